//! The embedded local fleet behind `runbook demo` and the tests: real HTTP servers on loopback.
//!
//! - app instances, each a server answering `/` with its version and `/health`;
//! - a router in front that sends each request to an instance (uniformly over the instances in
//!   service, by version weights, or by a feature flag's percentage), and exports per-version
//!   request, error and latency metrics in Prometheus text format at `/metrics`;
//! - a control API at `/_fleet/...` that the `local` adapter drives (deploy, weights, flag,
//!   replace, serve, remove, scale, maintenance);
//! - a steady traffic generator.
//!
//! A version named as bad fails about 20% of requests and answers slowly.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

type Body = Full<Bytes>;

const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0,
];

#[derive(Debug, Clone)]
pub struct Options {
    /// Versions whose instances misbehave.
    pub bad_versions: Vec<String>,
    /// Requests per second from the traffic generator (0: none).
    pub traffic_rps: u32,
    pub current_version: String,
    pub instances: usize,
}

#[derive(Debug, Clone)]
struct Instance {
    id: u64,
    version: String,
    env: String,
    addr: SocketAddr,
    in_service: bool,
    stop: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct Routing {
    instances: Vec<Instance>,
    /// Version weights; `None` routes uniformly over the instances in service.
    weights: Option<BTreeMap<String, u32>>,
    /// A feature flag: (name, version it turns on, percent of requests).
    flag: Option<(String, String, u32)>,
    maintenance: bool,
}

#[derive(Debug, Default, Clone)]
struct Series {
    requests: u64,
    errors: u64,
    buckets: [u64; BUCKETS.len()],
    sum: f64,
}

struct State {
    routing: Mutex<Routing>,
    metrics: Mutex<BTreeMap<String, Series>>,
    next_id: AtomicU64,
    /// Versions that misbehave: the share of their requests that fail (percent).
    bad: Mutex<BTreeMap<String, u32>>,
    client: reqwest::Client,
    requests_sent: AtomicU64,
}

pub struct Fleet {
    pub router: SocketAddr,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
}

async fn listen() -> std::io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

/// Serve `handler` on `listener` until `stop` is set.
fn serve<F, Fut>(listener: TcpListener, stop: Arc<AtomicBool>, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if stop.load(Ordering::SeqCst) { return; }
                    continue;
                }
            };
            let Ok((stream, _)) = accepted else { continue };
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let h = handler.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let svc = hyper::service::service_fn(move |req| {
                    let h = h.clone();
                    async move { Ok::<_, Infallible>(h(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.into())));
    *r.status_mut() = status;
    r
}

fn json_response(v: &Value) -> Response<Body> {
    let mut r = text(StatusCode::OK, v.to_string());
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

impl Fleet {
    /// Start the router, the current version's instances and the traffic generator.
    pub async fn start(opts: Options) -> std::io::Result<Fleet> {
        let state = Arc::new(State {
            routing: Mutex::new(Routing::default()),
            metrics: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            bad: Mutex::new(opts.bad_versions.iter().map(|v| (v.clone(), 20)).collect()),
            client: reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(64)
                .build()
                .map_err(std::io::Error::other)?,
            requests_sent: AtomicU64::new(0),
        });
        for _ in 0..opts.instances {
            start_instance(&state, "production", &opts.current_version, true).await?;
        }
        let (listener, router) = listen().await?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = state.clone();
        serve(listener, stop.clone(), move |req| {
            let st = st.clone();
            async move { route(st, req).await }
        });
        if opts.traffic_rps > 0 {
            let st = state.clone();
            let stop2 = stop.clone();
            let url = format!("http://{router}/");
            let every = Duration::from_micros(1_000_000 / u64::from(opts.traffic_rps));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                while !stop2.load(Ordering::SeqCst) {
                    tick.tick().await;
                    let client = st.client.clone();
                    let url = url.clone();
                    st.requests_sent.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        let _ = client
                            .get(&url)
                            .timeout(Duration::from_secs(10))
                            .send()
                            .await;
                    });
                }
            });
        }
        Ok(Fleet {
            router,
            state,
            stop,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.router)
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for i in &self.state.routing.lock().expect("fleet lock").instances {
            i.stop.store(true, Ordering::SeqCst);
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn start_instance(
    state: &Arc<State>,
    env: &str,
    version: &str,
    in_service: bool,
) -> std::io::Result<Instance> {
    let (listener, addr) = listen().await?;
    let id = state.next_id.fetch_add(1, Ordering::SeqCst);
    let stop = Arc::new(AtomicBool::new(false));
    let v = version.to_string();
    let st = state.clone();
    serve(listener, stop.clone(), move |req: Request<Incoming>| {
        let v = v.clone();
        // Read per request: `/_fleet/break` turns a running version bad.
        let bad = st.bad.lock().expect("fleet lock").get(&v).copied();
        async move {
            match req.uri().path() {
                "/health" => text(StatusCode::OK, "ok\n"),
                _ => {
                    if let Some(percent) = bad {
                        tokio::time::sleep(Duration::from_millis(fastrand::u64(150..450))).await;
                        if fastrand::u32(0..100) < percent {
                            return text(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                format!("{v} (instance {id}) failed\n"),
                            );
                        }
                    } else {
                        tokio::time::sleep(Duration::from_millis(fastrand::u64(2..12))).await;
                    }
                    text(StatusCode::OK, format!("{v} (instance {id})\n"))
                }
            }
        }
    });
    let inst = Instance {
        id,
        version: version.to_string(),
        env: env.to_string(),
        addr,
        in_service,
        stop,
    };
    state
        .routing
        .lock()
        .expect("fleet lock")
        .instances
        .push(inst.clone());
    Ok(inst)
}

/// Pick the instance for one request, by the routing rules in force.
fn pick(r: &Routing) -> Option<Instance> {
    let prod: Vec<&Instance> = r
        .instances
        .iter()
        .filter(|i| i.env == "production")
        .collect();
    let choose = |c: Vec<&Instance>| -> Option<Instance> {
        if c.is_empty() {
            None
        } else {
            Some(c[fastrand::usize(0..c.len())].clone())
        }
    };
    if let Some((_, version, percent)) = &r.flag {
        let on: Vec<&Instance> = prod
            .iter()
            .copied()
            .filter(|i| &i.version == version)
            .collect();
        let off: Vec<&Instance> = prod
            .iter()
            .copied()
            .filter(|i| &i.version != version && i.in_service)
            .collect();
        if !on.is_empty() && fastrand::u32(0..100) < *percent {
            return choose(on);
        }
        return choose(off);
    }
    if let Some(w) = &r.weights {
        let total: u32 = w.values().sum();
        if total > 0 {
            let mut roll = fastrand::u32(0..total);
            for (version, weight) in w {
                if roll < *weight {
                    return choose(
                        prod.iter()
                            .copied()
                            .filter(|i| &i.version == version)
                            .collect(),
                    );
                }
                roll -= weight;
            }
        }
    }
    choose(prod.into_iter().filter(|i| i.in_service).collect())
}

fn record(state: &State, version: &str, ok: bool, took: Duration) {
    let mut m = state.metrics.lock().expect("metrics lock");
    let s = m.entry(version.to_string()).or_default();
    s.requests += 1;
    if !ok {
        s.errors += 1;
    }
    let secs = took.as_secs_f64();
    s.sum += secs;
    for (i, b) in BUCKETS.iter().enumerate() {
        if secs <= *b {
            s.buckets[i] += 1;
        }
    }
}

/// This process's CPU seconds (user + system), resident bytes, and the machine's memory, from
/// /proc: the demo fleet runs its instances as tasks of this process, so this is their usage.
fn process_usage() -> Option<(f64, f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after its closing paren.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime): (f64, f64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let total_kb: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((
        (utime + stime) / ticks.max(1.0),
        resident * page,
        total_kb * 1024.0,
    ))
}

fn metrics_text(state: &State) -> String {
    let m = state.metrics.lock().expect("metrics lock").clone();
    let mut out = String::new();
    if let Some((cpu, rss, total)) = process_usage() {
        out.push_str(&format!(
            "# HELP demo_fleet_process_cpu_seconds_total CPU time of the process running the fleet (all its instances).
# TYPE demo_fleet_process_cpu_seconds_total counter
demo_fleet_process_cpu_seconds_total {cpu}
             # HELP demo_fleet_process_resident_memory_bytes Resident memory of the process running the fleet.
# TYPE demo_fleet_process_resident_memory_bytes gauge
demo_fleet_process_resident_memory_bytes {rss}
             # HELP demo_fleet_machine_memory_bytes The machine's memory.
# TYPE demo_fleet_machine_memory_bytes gauge
demo_fleet_machine_memory_bytes {total}
"
        ));
    }
    let orders: u64 = m.values().map(|s| s.requests - s.errors).sum::<u64>() / 3;
    out.push_str(&format!("# HELP demo_orders_total Orders placed (a business metric: every third good request).\n# TYPE demo_orders_total counter\ndemo_orders_total {orders}\n"));
    out.push_str("# HELP demo_requests_total Requests answered, by version.\n# TYPE demo_requests_total counter\n");
    for (v, s) in &m {
        out.push_str(&format!(
            "demo_requests_total{{version=\"{v}\"}} {}\n",
            s.requests
        ));
    }
    out.push_str("# HELP demo_errors_total Requests answered with a 5xx, by version.\n# TYPE demo_errors_total counter\n");
    for (v, s) in &m {
        out.push_str(&format!(
            "demo_errors_total{{version=\"{v}\"}} {}\n",
            s.errors
        ));
    }
    out.push_str("# HELP demo_request_duration_seconds Request latency, by version.\n# TYPE demo_request_duration_seconds histogram\n");
    for (v, s) in &m {
        for (i, b) in BUCKETS.iter().enumerate() {
            out.push_str(&format!(
                "demo_request_duration_seconds_bucket{{version=\"{v}\",le=\"{b}\"}} {}\n",
                s.buckets[i]
            ));
        }
        out.push_str(&format!(
            "demo_request_duration_seconds_bucket{{version=\"{v}\",le=\"+Inf\"}} {}\n",
            s.requests
        ));
        out.push_str(&format!(
            "demo_request_duration_seconds_sum{{version=\"{v}\"}} {}\n",
            s.sum
        ));
        out.push_str(&format!(
            "demo_request_duration_seconds_count{{version=\"{v}\"}} {}\n",
            s.requests
        ));
    }
    out
}

fn state_json(state: &State) -> Value {
    let r = state.routing.lock().expect("fleet lock");
    json!({
        "instances": r.instances.iter().map(|i| json!({
            "id": i.id, "version": i.version, "env": i.env, "url": format!("http://{}", i.addr), "in_service": i.in_service,
        })).collect::<Vec<_>>(),
        "weights": r.weights,
        "flag": r.flag.as_ref().map(|(n, v, p)| json!({ "name": n, "version": v, "percent": p })),
        "maintenance": r.maintenance,
    })
}

#[derive(Deserialize)]
struct DeployReq {
    env: String,
    version: String,
    #[serde(default = "one")]
    count: usize,
    #[serde(default)]
    serve: bool,
}
fn one() -> usize {
    1
}

#[derive(Deserialize)]
struct ReplaceReq {
    id: u64,
    version: String,
}

#[derive(Deserialize)]
struct FlagReq {
    name: String,
    version: String,
    percent: u32,
}

#[derive(Deserialize)]
struct VersionReq {
    version: String,
    #[serde(default)]
    env: Option<String>,
}

async fn control(state: Arc<State>, path: &str, body: Bytes) -> Result<Value, String> {
    let parse = |b: &Bytes| -> Result<Value, String> {
        if b.is_empty() {
            Ok(Value::Null)
        } else {
            serde_json::from_slice(b).map_err(|e| format!("bad JSON body: {e}"))
        }
    };
    let v = parse(&body)?;
    let de = |v: Value| v;
    match path {
        "/_fleet/state" => Ok(state_json(&state)),
        "/_fleet/break" => {
            // {"version": "v1", "percent": 100}: from now on that share of its requests fail
            // (0 mends it). For the detection-latency benchmark and tests.
            let version = v["version"]
                .as_str()
                .ok_or("`version` is required")?
                .to_string();
            let percent = v["percent"].as_u64().unwrap_or(20).min(100) as u32;
            let mut bad = state.bad.lock().expect("fleet lock");
            if percent == 0 {
                bad.remove(&version);
            } else {
                bad.insert(version.clone(), percent);
            }
            Ok(json!({ "version": version, "percent": percent }))
        }
        "/_fleet/deploy" => {
            let r: DeployReq = serde_json::from_value(de(v)).map_err(|e| e.to_string())?;
            let mut started = Vec::new();
            for _ in 0..r.count.clamp(1, 32) {
                let i = start_instance(&state, &r.env, &r.version, r.serve)
                    .await
                    .map_err(|e| e.to_string())?;
                started.push(json!({ "id": i.id, "url": format!("http://{}", i.addr) }));
            }
            Ok(json!({ "started": started }))
        }
        "/_fleet/replace" => {
            let r: ReplaceReq = serde_json::from_value(v).map_err(|e| e.to_string())?;
            let old = {
                let routing = state.routing.lock().expect("fleet lock");
                routing.instances.iter().find(|i| i.id == r.id).cloned()
            }
            .ok_or_else(|| format!("no instance {}", r.id))?;
            let new = start_instance(&state, &old.env, &r.version, old.in_service)
                .await
                .map_err(|e| e.to_string())?;
            let mut routing = state.routing.lock().expect("fleet lock");
            routing.instances.retain(|i| i.id != old.id);
            old.stop.store(true, Ordering::SeqCst);
            Ok(json!({ "replaced": old.id, "id": new.id, "url": format!("http://{}", new.addr) }))
        }
        "/_fleet/weights" => {
            let w: BTreeMap<String, u32> = serde_json::from_value(v).map_err(|e| e.to_string())?;
            let mut routing = state.routing.lock().expect("fleet lock");
            routing.weights = if w.is_empty() { None } else { Some(w) };
            Ok(json!({ "weights": routing.weights }))
        }
        "/_fleet/flag" => {
            let f: FlagReq = serde_json::from_value(v).map_err(|e| e.to_string())?;
            let mut routing = state.routing.lock().expect("fleet lock");
            routing.flag = if f.percent == 0 {
                None
            } else {
                Some((f.name, f.version, f.percent.min(100)))
            };
            Ok(
                json!({ "flag": routing.flag.as_ref().map(|(n, v, p)| json!({ "name": n, "version": v, "percent": p })) }),
            )
        }
        "/_fleet/serve" | "/_fleet/unserve" => {
            let r: VersionReq = serde_json::from_value(v).map_err(|e| e.to_string())?;
            let on = path == "/_fleet/serve";
            let mut routing = state.routing.lock().expect("fleet lock");
            for i in routing.instances.iter_mut().filter(|i| {
                i.version == r.version
                    && i.env == r.env.clone().unwrap_or_else(|| "production".into())
            }) {
                i.in_service = on;
            }
            Ok(json!({ "version": r.version, "in_service": on }))
        }
        "/_fleet/remove" => {
            let r: VersionReq = serde_json::from_value(v).map_err(|e| e.to_string())?;
            let env = r.env.unwrap_or_else(|| "production".into());
            let mut routing = state.routing.lock().expect("fleet lock");
            let mut removed = 0;
            routing.instances.retain(|i| {
                let gone = i.version == r.version && i.env == env;
                if gone {
                    i.stop.store(true, Ordering::SeqCst);
                    removed += 1;
                }
                !gone
            });
            Ok(json!({ "removed": removed }))
        }
        "/_fleet/maintenance" => {
            let on = v.get("on").and_then(Value::as_bool).unwrap_or(false);
            state.routing.lock().expect("fleet lock").maintenance = on;
            Ok(json!({ "maintenance": on }))
        }
        other => Err(format!("no control endpoint {other}")),
    }
}

async fn route(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/metrics" {
        return text(StatusCode::OK, metrics_text(&state));
    }
    if path.starts_with("/_fleet/") {
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
        };
        return match control(state, &path, body).await {
            Ok(v) => json_response(&v),
            Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        };
    }
    let picked = {
        let r = state.routing.lock().expect("fleet lock");
        if r.maintenance {
            return text(StatusCode::SERVICE_UNAVAILABLE, "down for maintenance\n");
        }
        pick(&r)
    };
    let Some(inst) = picked else {
        return text(StatusCode::BAD_GATEWAY, "no instance in service\n");
    };
    let started = Instant::now();
    let url = format!("http://{}{}", inst.addr, path);
    match state
        .client
        .get(&url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(resp) => {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            record(
                &state,
                &inst.version,
                !status.is_server_error(),
                started.elapsed(),
            );
            let mut r = text(
                StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
                body,
            );
            if let Ok(v) = hyper::header::HeaderValue::from_str(&inst.version) {
                r.headers_mut().insert("x-version", v);
            }
            r
        }
        Err(e) => {
            record(&state, &inst.version, false, started.elapsed());
            text(
                StatusCode::BAD_GATEWAY,
                format!("instance {} unreachable: {e}\n", inst.id),
            )
        }
    }
}
