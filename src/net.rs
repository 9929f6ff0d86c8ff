//! The HTTP client of checks and metric providers.
//!
//! Plain `http://` goes through hyper-util's pooled client: no TLS is set up for it. Building a
//! reqwest client with native TLS loads and parses the system's CA bundle, about 80 ms of CPU on
//! this machine, which dominated a `check_all` of 200 loopback endpoints; that client is built
//! only when an `https://` URL is in the batch.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::{connect::HttpConnector, Client as Legacy};

#[derive(Clone)]
pub struct Client {
    plain: Legacy<HttpConnector, Empty<Bytes>>,
    tls: Option<reqwest::Client>,
}

/// An answer: the status and at most `max_body` bytes of the body (when asked for).
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Client {
    pub fn new(tls: Option<reqwest::Client>) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let plain = Legacy::builder(hyper_util::rt::TokioExecutor::new())
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .build(connector);
        Client { plain, tls }
    }

    /// The same pool of plain connections, with the TLS client for https:// URLs.
    pub fn with_tls(self, tls: reqwest::Client) -> Client {
        Client {
            tls: Some(tls),
            ..self
        }
    }

    /// Send `method url` and read the body (up to `max_body` bytes, more is an error) when
    /// `read_body`. The caller bounds the time.
    pub async fn request(
        &self,
        method: &str,
        url: &str,
        read_body: bool,
        max_body: usize,
    ) -> Result<Answer, String> {
        let too_big = || {
            format!(
                "the answer is larger than {} (max_bytes); refusing to read on",
                human_bytes(max_body)
            )
        };
        if url.starts_with("https://") {
            let Some(tls) = &self.tls else {
                return Err(format!("no TLS client was set up for {url}"));
            };
            let m = reqwest::Method::from_bytes(method.as_bytes())
                .map_err(|_| format!("`{method}` is not an HTTP method"))?;
            let mut resp = tls
                .request(m, url)
                .send()
                .await
                .map_err(|e| describe_reqwest(&e))?;
            let status = resp.status().as_u16();
            let mut body = Vec::new();
            if read_body {
                while let Some(c) = resp.chunk().await.map_err(|e| describe_reqwest(&e))? {
                    body.extend_from_slice(&c);
                    if body.len() > max_body {
                        return Err(too_big());
                    }
                }
            }
            return Ok(Answer { status, body });
        }
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let m = hyper::Method::from_bytes(method.as_bytes())
            .map_err(|_| format!("`{method}` is not an HTTP method"))?;
        let req = hyper::Request::builder()
            .method(m)
            .uri(uri)
            .body(Empty::new())
            .map_err(|e| format!("cannot make a request to {url}: {e}"))?;
        let resp = self.plain.request(req).await.map_err(|e| describe(&e))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        if read_body {
            let mut b = resp.into_body();
            while let Some(frame) = b.frame().await {
                let frame = frame.map_err(|e| format!("the answer broke off: {e}"))?;
                if let Some(d) = frame.data_ref() {
                    body.extend_from_slice(d);
                    if body.len() > max_body {
                        return Err(too_big());
                    }
                }
            }
        }
        Ok(Answer { status, body })
    }
}

fn chain(mut msg: String, e: &dyn std::error::Error) -> String {
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let head = if e.is_connect() {
        "cannot connect".to_string()
    } else {
        e.to_string()
    };
    chain(head, e)
}

pub fn describe_reqwest(e: &reqwest::Error) -> String {
    let head = if e.is_connect() {
        "cannot connect".to_string()
    } else if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    chain(head, e)
}

pub fn human_bytes(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}
