//! The shipped deploy runbook on the setups teams run: every adapter with every strategy, a good
//! and a bad release each, judged by a real metrics source, traffic at the end counted by real
//! requests through the router.
//!
//! - `local`: the embedded demo fleet, judged by scraping its /metrics.
//! - `script`: the team's own shell scripts in front of a real nginx; app instances started here
//!   (each serves the version a script wrote for it, and exports Prometheus counters); one real
//!   Prometheus for the whole suite scrapes them; the triggers are PromQL.
//! - `kubernetes`: a recording kubectl (no cluster can run here) that also acts on the same kind
//!   of app instances and nginx (apply writes a manifest's version, the VirtualService and Service
//!   patches set nginx's weights), so the same PromQL judges it and the same requests count it.
//!
//! Each cell prints `MATRIX | cell | exit | traffic | detection` (run with --nocapture to see).

use crate::support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::support::Test;

// ------------------------------------------------------------------ app instances

/// Counters one instance exports, by version.
#[derive(Default)]
struct Counters {
    requests: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    seconds: BTreeMap<String, f64>,
}

/// An app instance on loopback: `/` answers with the version in `<dir>/version` (a bad version,
/// listed in `<dir>/../bad`, fails one request in four and answers 150 ms late; a slow one,
/// listed in `<dir>/../slow`, answers 300 ms late); `/health` answers ok while a version is
/// deployed; `/metrics` exports `app_requests_total`, `app_errors_total` and
/// `app_request_duration_seconds_{sum,count}` by version.
fn start_app(dir: PathBuf) -> u16 {
    std::fs::create_dir_all(&dir).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let counters = Arc::new(Mutex::new(Counters::default()));
    let n = Arc::new(std::sync::atomic::AtomicU64::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (dir, counters, n) = (dir.clone(), counters.clone(), n.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
                let version = std::fs::read_to_string(dir.join("version"))
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                let listed = |file: &str| {
                    std::fs::read_to_string(dir.parent().unwrap().join(file))
                        .unwrap_or_default()
                        .split_whitespace()
                        .any(|v| v == version)
                };
                let (status, body) = if path == "/metrics" {
                    let c = counters.lock().unwrap();
                    let mut text = String::new();
                    for (name, map) in [
                        ("app_requests_total", &c.requests),
                        ("app_errors_total", &c.errors),
                        ("app_request_duration_seconds_count", &c.requests),
                    ] {
                        for (v, n) in map {
                            text.push_str(&format!("{name}{{version=\"{v}\"}} {n}\n"));
                        }
                    }
                    for (v, s) in &c.seconds {
                        text.push_str(&format!(
                            "app_request_duration_seconds_sum{{version=\"{v}\"}} {s}\n"
                        ));
                    }
                    (200, text)
                } else if version.is_empty() || version == "none" {
                    (503, "nothing deployed\n".to_string())
                } else if path == "/health" {
                    (200, "ok\n".to_string())
                } else {
                    let started = Instant::now();
                    let i = n.fetch_add(1, Ordering::Relaxed);
                    let (bad, slow) = (listed("bad"), listed("slow"));
                    if bad {
                        std::thread::sleep(Duration::from_millis(150));
                    }
                    if slow {
                        std::thread::sleep(Duration::from_millis(300));
                    }
                    let failed = bad && i % 4 == 0;
                    let mut c = counters.lock().unwrap();
                    *c.requests.entry(version.clone()).or_default() += 1;
                    *c.seconds.entry(version.clone()).or_default() +=
                        started.elapsed().as_secs_f64();
                    if failed {
                        *c.errors.entry(version.clone()).or_default() += 1;
                        (500, format!("{version} failed\n"))
                    } else {
                        c.errors.entry(version.clone()).or_default();
                        (200, format!("{version}\n"))
                    }
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

// ------------------------------------------------------------------ nginx in front

/// One GET through the front: (status, body).
fn get(port: u16) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET / HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.trim().to_string();
    Some((status, body))
}

/// Requests through the front until dropped: about 80 a second, from four clients.
struct Traffic(Arc<AtomicBool>);

impl Traffic {
    fn start(port: u16) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        for _ in 0..4 {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = get(port);
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        }
        Traffic(stop)
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Which version answered `n` requests through the front, in percent ("v1 100%").
fn measured_split(port: u16, n: u32) -> String {
    let mut by: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..n {
        let v = match get(port) {
            Some((_, body)) => body.split_whitespace().next().unwrap_or("?").to_string(),
            None => "no answer".to_string(),
        };
        *by.entry(v).or_default() += 1;
    }
    by.iter()
        .map(|(v, c)| format!("{v} {}%", c * 100 / n))
        .collect::<Vec<_>>()
        .join(", ")
}

// ------------------------------------------------------------------ one Prometheus for the suite

/// The suite's Prometheus: file-based service discovery under `targets/`, one file per cell,
/// each target labelled with its cell. It lives as long as the test process: a shell keeps it
/// and kills it when the test process's pipe to it closes.
struct SharedProm {
    url: String,
    targets: PathBuf,
    _dir: tempfile::TempDir,
}

static PROM: OnceLock<SharedProm> = OnceLock::new();
static PROM_KEEPER: OnceLock<Mutex<std::process::ChildStdin>> = OnceLock::new();

fn prometheus() -> &'static SharedProm {
    PROM.get_or_init(|| {
        let bin = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("prometheus is not installed: .ci/run installs it with apt-get (package prometheus)");
        let dir = tempfile::tempdir().unwrap();
        let targets = dir.path().join("targets");
        std::fs::create_dir_all(&targets).unwrap();
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 500ms\n  scrape_timeout: 500ms\n  evaluation_interval: 500ms\n\
                 scrape_configs:\n  - job_name: apps\n    file_sd_configs:\n      - files: ['{}/*.json']\n        refresh_interval: 1s\n",
                targets.display()
            ),
        )
        .unwrap();
        let port = support::free_port();
        let script = format!(
            "{bin} --config.file={d}/prometheus.yml --storage.tsdb.path={d}/data --web.listen-address=127.0.0.1:{port} --log.level=warn >/dev/null 2>&1 & p=$!; cat >/dev/null; kill $p; wait $p",
            d = dir.path().display()
        );
        #[allow(clippy::zombie_processes)]
        let mut keeper = std::process::Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("start prometheus");
        PROM_KEEPER.get_or_init(|| Mutex::new(keeper.stdin.take().unwrap()));
        // The keeper shell ends with the test process (its stdin closes); nobody waits for it
        // here, on purpose.
        std::mem::forget(keeper);
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while support::http_get(&format!("{url}/-/ready")).is_none() {
            assert!(Instant::now() < deadline, "prometheus did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        SharedProm {
            url,
            targets,
            _dir: dir,
        }
    })
}

fn query(url: &str, q: &str) -> String {
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    support::http_get(&format!("{url}/api/v1/query?query={enc}")).unwrap_or_default()
}

/// Scrape `ports` as cell `cell`, and wait until v1's request rate is known there.
fn watch_cell(prom: &str, targets: &Path, cell: &str, ports: &[u16]) {
    let list: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    std::fs::write(
        targets.join(format!("{cell}.json")),
        format!(
            "[{{\"targets\": [{}], \"labels\": {{\"cell\": \"{cell}\"}}}}]",
            list.join(", ")
        ),
    )
    .unwrap();
    let q = format!("sum(rate(app_requests_total{{cell=\"{cell}\",version=\"v1\"}}[2s]))");
    let deadline = Instant::now() + Duration::from_secs(40);
    while !query(prom, &q).contains("\"value\"") {
        assert!(
            Instant::now() < deadline,
            "prometheus never had v1's rate for {cell}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn queries(cell: &str) -> String {
    let sel = |m: &str| format!("{m}{{cell=\"{cell}\",version=\"{{{{version}}}}\"}}");
    format!(
        "  queries:\n    error_rate: '(sum(rate({}[2s])) or vector(0)) / sum(rate({}[2s]))'\n    response_time: '1000 * sum(rate({}[2s])) / sum(rate({}[2s]))'\n    requests: 'sum(rate({}[2s]))'\n",
        sel("app_errors_total"),
        sel("app_requests_total"),
        sel("app_request_duration_seconds_sum"),
        sel("app_request_duration_seconds_count"),
        sel("app_requests_total"),
    )
}

// ------------------------------------------------------------------ reading a run

/// From the first traffic change (a journal intent mentioning one of `markers`) to the first
/// failing verdict, in ms.
fn detection_ms(out: &support::Output, markers: &[&str]) -> Option<i64> {
    let records = out.journal();
    let ts = |r: &serde_json::Value| {
        let t = r["ts"].as_str().unwrap_or("");
        // 2026-11-28T10:00:00.123Z
        let h: i64 = t.get(11..13)?.parse().ok()?;
        let m: i64 = t.get(14..16)?.parse().ok()?;
        let s: f64 = t.get(17..t.len() - 1)?.parse().ok()?;
        Some(((h * 60 + m) * 60) * 1000 + (s * 1000.0) as i64)
    };
    let change = records.iter().find(|r| {
        r["type"] == "effect.intent" && {
            let text = r.to_string();
            markers.iter().any(|m| text.contains(m))
        }
    })?;
    let verdict = records
        .iter()
        .find(|r| r["type"] == "verdict" && r["verdict"]["verdict"] != "success")?;
    Some(ts(verdict)? - ts(change)?)
}

/// What the run said it rolled back for ("" when it did not).
fn rollback_reason(out: &support::Output) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("Rolling back: "))
        .unwrap_or("")
        .to_string()
}

fn report(cell: &str, out: &support::Output, traffic: &str, detection: Option<i64>) {
    let d = detection
        .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
        .unwrap_or_else(|| "-".into());
    println!(
        "MATRIX | {cell} | {} | {traffic} | {d} | {}",
        out.code,
        rollback_reason(out)
    );
}

const ANSWERS: &str = "prerequisites: yes\npre-deployment-checklist: yes\nstaging-deployment-successful-proceed-to-production: yes\n";

fn expect_outcome(cell: &str, bad: bool, out: &support::Output, traffic: &str) {
    if bad {
        // A bad release is rolled back.
        out.expect_status(3);
        assert!(
            !out.artifact("post-mortem.md").is_empty(),
            "{cell}: no post-mortem"
        );
        // Rolled back by the monitor's verdict on the release, not by anything else. The line's
        // figures vary from run to run: only the trigger named in it is pinned.
        let why = rollback_reason(out);
        assert!(
            why.contains("error rate") || why.contains("avg response"),
            "{cell}: rolled back for `{why}`\n{}",
            out.describe()
        );
        assert_eq!(
            traffic,
            "v1 100%",
            "{cell}: all traffic back on v1\n{}",
            out.describe()
        );
    } else {
        // A good release is promoted.
        out.expect_status(0);
        assert_eq!(
            traffic,
            "v2 100%",
            "{cell}: all traffic on v2\n{}",
            out.describe()
        );
    }
}

// ------------------------------------------------------------------ the script adapter

/// The team's scripts: each takes the ports from the environment and writes version files
/// (`apps/<instance>/version`) and nginx's upstream.
const SCRIPTS: &[(&str, &str)] = &[
    (
        "deploy.sh",
        "#!/bin/sh\n# ./deploy.sh ENV VERSION\nset -e\ncase \"$1\" in\n  staging) d=staging ;;\n  production-blue) d=blue ;;\n  production-green) d=green ;;\n  *) echo \"unknown environment $1\" >&2; exit 2 ;;\nesac\necho \"$2\" > \"apps/$d/version\"\n",
    ),
    (
        "remove.sh",
        "#!/bin/sh\nset -e\ncase \"$1\" in\n  staging) d=staging ;;\n  production-blue) d=blue ;;\n  production-green) d=green ;;\nesac\necho none > \"apps/$d/version\"\n",
    ),
    (
        "health.sh",
        "#!/bin/sh\ncase \"$1\" in\n  staging) p=$STAGING_PORT ;;\n  production-blue) p=$BLUE_PORT ;;\n  production-green) p=$GREEN_PORT ;;\n  blue|green) eval p=\\$$(echo \"$1\" | tr a-z A-Z)_PORT ;;\nesac\ncurl -fsS \"http://127.0.0.1:$p/health\"\n",
    ),
    (
        "upstream.sh",
        "#!/bin/sh\n# ./upstream.sh BLUE_WEIGHT GREEN_WEIGHT: nginx's split between the colours.\nset -e\nline() { if [ \"$2\" -gt 0 ]; then echo \"server 127.0.0.1:$1 weight=$2;\"; else echo \"server 127.0.0.1:$1 down;\"; fi; }\necho \"upstream app { $(line $BLUE_PORT $1) $(line $GREEN_PORT $2) }\" > \"$NGINX_DIR/upstream.conf\"\nnginx -s reload -c \"$NGINX_DIR/nginx.conf\" -p \"$NGINX_DIR\" 2>/dev/null\nsleep 0.3\n",
    ),
    (
        "switch.sh",
        "#!/bin/sh\n# ./switch.sh FROM TO (colours)\nif [ \"$2\" = green ]; then ./upstream.sh 0 100; else ./upstream.sh 100 0; fi\n",
    ),
    (
        "weight.sh",
        "#!/bin/sh\n# ./weight.sh COLOUR PERCENT\nif [ \"$1\" = green ]; then ./upstream.sh $((100 - $2)) $2; else ./upstream.sh $2 $((100 - $2)); fi\n",
    ),
    (
        "flag.sh",
        "#!/bin/sh\n# ./flag.sh ACTION NAME PERCENT: the flag sends PERCENT of requests to the dark version (green).\n./upstream.sh $((100 - $3)) $3\n",
    ),
    (
        "replace.sh",
        "#!/bin/sh\n# ./replace.sh INSTANCE VERSION\necho \"$2\" > \"apps/$1/version\"\nsleep 0.2\n",
    ),
];

struct ScriptWorld {
    t: Test,
    nginx: support::Nginx,
    _traffic: Traffic,
    prom: &'static SharedProm,
}

/// Two production instances (blue live with v1, green idle) and staging, behind nginx, scraped
/// by the suite's Prometheus as `cell`; `bad` / `slow` list the versions that misbehave.
fn script_world(cell: &str, rolling: bool, bad: &str, slow: &str) -> ScriptWorld {
    let prom = prometheus();
    let mut t = Test::new();
    let dir = t.path().to_path_buf();
    let apps = dir.join("apps");
    let blue = start_app(apps.join("blue"));
    let green = start_app(apps.join("green"));
    let staging = start_app(apps.join("staging"));
    std::fs::write(apps.join("bad"), bad).unwrap();
    std::fs::write(apps.join("slow"), slow).unwrap();
    std::fs::write(apps.join("blue/version"), "v1\n").unwrap();
    std::fs::write(
        apps.join("green/version"),
        if rolling { "v1\n" } else { "none\n" },
    )
    .unwrap();
    let upstream = if rolling {
        format!("upstream app {{ server 127.0.0.1:{blue}; server 127.0.0.1:{green}; }}\n")
    } else {
        format!("upstream app {{ server 127.0.0.1:{blue} weight=100; server 127.0.0.1:{green} down; }}\n")
    };
    let nginx = support::Nginx::start(&dir.join("nginx"), "app", &upstream);
    let traffic = Traffic::start(nginx.port);
    for (name, text) in SCRIPTS {
        t = t.executable(name, text);
    }
    let path = format!(
        "/usr/sbin:/usr/bin:/sbin:/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    t = t
        .env("BLUE_PORT", &blue.to_string())
        .env("GREEN_PORT", &green.to_string())
        .env("STAGING_PORT", &staging.to_string())
        .env("NGINX_DIR", &dir.join("nginx").display().to_string())
        .env("PATH", &path);
    watch_cell(&prom.url, &prom.targets, cell, &[blue, green, staging]);
    ScriptWorld {
        t,
        nginx,
        _traffic: traffic,
        prom,
    }
}

const SCRIPT_CONFIG: &str = "adapter: script\nfeature: shop\nversion: v2\ncurrent_version: v1\n\
script:\n  deploy: ./deploy.sh {env} {version}\n  health: ./health.sh {env}\n  remove: ./remove.sh {env}\n\
\x20 switch: ./switch.sh {from} {to}\n  weight: ./weight.sh {colour} {percent}\n  flag: ./flag.sh {action} {name} {percent}\n\
\x20 instances: [blue, green]\n  replace: ./replace.sh {instance} {version}\n  instance_health: ./health.sh {instance}\n\
rollout:\n  initial: 20\n  steps: [50, 100]\nrolling:\n  batch_size: 1\n";

fn script_cell(strategy: &str, bad: bool) {
    let cell = format!("script-{strategy}-{}", if bad { "bad" } else { "good" });
    let w = script_world(
        &cell,
        strategy == "rolling",
        if bad { "v2" } else { "" },
        "",
    );
    let config = format!(
        "{SCRIPT_CONFIG}monitoring:\n  interval: 500ms\n  samples: 3\n  prometheus: {}\n{}",
        w.prom.url,
        queries(&cell)
    );
    let out =
        w.t.file("runbook.yaml", &config)
            .file("answers.yaml", &format!("strategy: {strategy}\n{ANSWERS}"))
            .args(&["deploy", "--answers", "answers.yaml", "--approve", "--yes"])
            .run();
    let traffic = measured_split(w.nginx.port, 100);
    let detection = if bad {
        detection_ms(&out, &["switch.sh", "weight.sh", "flag.sh", "replace.sh"])
    } else {
        None
    };
    report(&cell, &out, &traffic, detection);
    expect_outcome(&cell, bad, &out, &traffic);
    if bad {
        // With a request-rate query, the post-mortem estimates the failed requests.
        let pm = out.artifact("post-mortem.md");
        assert!(!pm.contains("not estimated"), "{cell}: {pm}");
    }
}

#[test]
fn script_blue_green_good() {
    script_cell("blue-green", false);
}
#[test]
fn script_blue_green_bad() {
    script_cell("blue-green", true);
}
#[test]
fn script_canary_good() {
    script_cell("canary", false);
}
#[test]
fn script_canary_bad() {
    script_cell("canary", true);
}
#[test]
fn script_feature_flag_good() {
    script_cell("feature-flag", false);
}
#[test]
fn script_feature_flag_bad() {
    script_cell("feature-flag", true);
}
#[test]
fn script_rolling_good() {
    script_cell("rolling", false);
}
#[test]
fn script_rolling_bad() {
    script_cell("rolling", true);
}

// ------------------------------------------------------------------ the kubernetes adapter

/// No cluster can run here: this kubectl records its arguments and acts on the app instances
/// the test started (one per Deployment) and on nginx (the VirtualService's weights, the
/// Service's selector), so that real requests and real metrics follow what it was told.
const FAKE_KUBECTL: &str = r#"#!/bin/sh
echo "$*" >> "$KUBECTL_LOG"
inst() { case "$1" in staging) echo staging ;; canary) echo canary ;; production) echo stable ;; production-blue) echo blue ;; production-green) echo green ;; *) echo "unknown env $1" >&2; exit 2 ;; esac; }
port() { eval echo \$$(echo "$1" | tr a-z A-Z)_PORT; }
line() { if [ "$2" -gt 0 ]; then echo "server 127.0.0.1:$(port $1) weight=$2;"; else echo "server 127.0.0.1:$(port $1) down;"; fi; }
route() {
  # route NAME WEIGHT NAME WEIGHT: nginx's split, then a reload
  echo "upstream app { $(line $1 $2) $(line $3 $4) }" > "$NGINX_DIR/upstream.conf"
  nginx -s reload -c "$NGINX_DIR/nginx.conf" -p "$NGINX_DIR" 2>/dev/null
  sleep 0.3
}
case "$1" in
  apply) env=$(basename "$3"); cp "$3/version" "apps/$(inst $env)/version" ;;
  delete) env=$(basename "$3"); echo none > "apps/$(inst $env)/version" ;;
  set) # set image deployment/app app=registry/app:v2
       echo "${4##*:}" > apps/stable/version ;;
  patch)
    case "$2" in
      virtualservice)
        s=$(echo "$7" | sed 's/.*"stable"},"weight":\([0-9]*\).*/\1/')
        c=$(echo "$7" | sed 's/.*"canary"},"weight":\([0-9]*\).*/\1/')
        route stable $s canary $c ;;
      service)
        case "$5" in *green*) route blue 0 green 100 ;; *) route blue 100 green 0 ;; esac ;;
    esac ;;
esac
echo ok
"#;

fn kube_cell(strategy: &str, bad: bool) {
    let cell = format!("kubernetes-{strategy}-{}", if bad { "bad" } else { "good" });
    let prom = prometheus();
    let mut t = Test::new();
    let dir = t.path().to_path_buf();
    let apps = dir.join("apps");
    let mut ports = BTreeMap::new();
    for i in ["stable", "canary", "blue", "green", "staging"] {
        ports.insert(i, start_app(apps.join(i)));
        std::fs::write(apps.join(i).join("version"), "none\n").unwrap();
    }
    std::fs::write(apps.join("bad"), if bad { "v2" } else { "" }).unwrap();
    std::fs::write(apps.join("stable/version"), "v1\n").unwrap();
    std::fs::write(apps.join("blue/version"), "v1\n").unwrap();
    for (env, v) in [
        ("staging", "v2"),
        ("canary", "v2"),
        ("production", "v2"),
        ("production-blue", "v1"),
        ("production-green", "v2"),
    ] {
        t = t.file(&format!("k8s/{env}/version"), &format!("{v}\n"));
    }
    let live = if strategy == "blue-green" {
        "blue"
    } else {
        "stable"
    };
    let nginx = support::Nginx::start(
        &dir.join("nginx"),
        "app",
        &format!("upstream app {{ server 127.0.0.1:{}; }}\n", ports[live]),
    );
    let _traffic = Traffic::start(nginx.port);
    let ids: Vec<u16> = ports.values().copied().collect();
    watch_cell(&prom.url, &prom.targets, &cell, &ids);
    t = t
        .executable("bin/kubectl", FAKE_KUBECTL)
        .executable(
            "flag.sh",
            "#!/bin/sh\n# ./flag.sh ACTION NAME PERCENT: the flag service sends PERCENT of requests to the dark version (green).\necho \"flag $*\" >> \"$KUBECTL_LOG\"\nprintf 'upstream app { server 127.0.0.1:%s %s; server 127.0.0.1:%s %s; }\\n' \"$STABLE_PORT\" \"$([ $3 -lt 100 ] && echo weight=$((100 - $3)) || echo down)\" \"$GREEN_PORT\" \"$([ $3 -gt 0 ] && echo weight=$3 || echo down)\" > \"$NGINX_DIR/upstream.conf\"\nnginx -s reload -c \"$NGINX_DIR/nginx.conf\" -p \"$NGINX_DIR\" 2>/dev/null\nsleep 0.3\n",
        );
    for (i, p) in &ports {
        t = t.env(&format!("{}_PORT", i.to_uppercase()), &p.to_string());
    }
    let path = format!(
        "{}/bin:/usr/sbin:/usr/bin:/sbin:/bin:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let config = format!(
        "adapter: kubernetes\nfeature: shop\nversion: v2\ncurrent_version: v1\n\
         kubernetes:\n  deployment: app\n  service: app\n  virtualservice: app\n  image: registry/app\n  flag: ./flag.sh {{action}} {{name}} {{percent}}\n\
         rollout:\n  initial: 20\n  steps: [50, 100]\n\
         monitoring:\n  interval: 500ms\n  samples: 3\n  prometheus: {}\n{}",
        prom.url,
        queries(&cell)
    );
    let out = t
        .env("PATH", &path)
        .env("NGINX_DIR", &dir.join("nginx").display().to_string())
        .env(
            "KUBECTL_LOG",
            &dir.join("kubectl.log").display().to_string(),
        )
        .file("runbook.yaml", &config)
        .file("answers.yaml", &format!("strategy: {strategy}\n{ANSWERS}"))
        .args(&["deploy", "--answers", "answers.yaml", "--approve", "--yes"])
        .run();
    let traffic = measured_split(nginx.port, 100);
    let detection = if bad {
        detection_ms(
            &out,
            &[
                "patch virtualservice",
                "patch service",
                "set image",
                "flag.sh",
            ],
        )
    } else {
        None
    };
    report(&cell, &out, &traffic, detection);
    let log = std::fs::read_to_string(dir.join("kubectl.log")).unwrap_or_default();
    expect_outcome(&cell, bad, &out, &traffic);
    // What kubectl was told, in order, for the traffic: the last word on it.
    let last = log
        .lines()
        .rfind(|l| {
            l.contains("virtualservice")
                || l.starts_with("patch service")
                || l.starts_with("set image")
                || l.starts_with("flag ")
        })
        .unwrap_or("")
        .to_string();
    let want = match (strategy, bad) {
        ("canary", _) => "\"subset\":\"stable\"},\"weight\":100",
        ("blue-green", false) => "\"color\":\"green\"",
        ("blue-green", true) => "\"color\":\"blue\"",
        ("rolling", false) => "app=registry/app:v2",
        ("rolling", true) => "app=registry/app:v1",
        ("feature-flag", false) => "\"subset\":\"stable\"},\"weight\":100",
        ("feature-flag", true) => "flag disable shop-enabled 0",
        _ => unreachable!(),
    };
    assert!(
        last.contains(want),
        "{cell}: last traffic command `{last}`\n{log}"
    );
}

#[test]
fn kubernetes_blue_green_good() {
    kube_cell("blue-green", false);
}
#[test]
fn kubernetes_blue_green_bad() {
    kube_cell("blue-green", true);
}
#[test]
fn kubernetes_canary_good() {
    kube_cell("canary", false);
}
#[test]
fn kubernetes_canary_bad() {
    kube_cell("canary", true);
}
#[test]
fn kubernetes_feature_flag_good() {
    kube_cell("feature-flag", false);
}
#[test]
fn kubernetes_feature_flag_bad() {
    kube_cell("feature-flag", true);
}
#[test]
fn kubernetes_rolling_good() {
    kube_cell("rolling", false);
}
#[test]
fn kubernetes_rolling_bad() {
    kube_cell("rolling", true);
}

// ------------------------------------------------------------------ the local adapter (demo fleet)

fn local_cell(strategy: &str, bad: bool) {
    let cell = format!("local-{strategy}-{}", if bad { "bad" } else { "good" });
    let (rt, fleet) = support::fleet(if bad { &["v2"] } else { &[] });
    let config = format!(
        "adapter: local\nlocal:\n  url: {}\nfeature: checkout\nversion: v2\ncurrent_version: v1\n\
         rollout:\n  initial: 20\n  steps: [50, 100]\nmonitoring:\n  interval: 400ms\n  samples: 3\n",
        fleet.url()
    );
    let out = Test::new()
        .file("runbook.yaml", &config)
        .file("answers.yaml", &format!("strategy: {strategy}\n{ANSWERS}"))
        .args(&["deploy", "--answers", "answers.yaml", "--approve", "--yes"])
        .run();
    let split = rt.block_on(runbook::demo::measure_split(&fleet.url(), 100));
    let traffic = split
        .iter()
        .map(|(v, c)| format!("{v} {c}%"))
        .collect::<Vec<_>>()
        .join(", ");
    let detection = if bad {
        detection_ms(
            &out,
            &[
                "/_fleet/weights",
                "/_fleet/flag",
                "/_fleet/replace",
                "/_fleet/switch",
            ],
        )
    } else {
        None
    };
    report(&cell, &out, &traffic, detection);
    expect_outcome(&cell, bad, &out, &traffic);
}

#[test]
fn local_blue_green_good() {
    local_cell("blue-green", false);
}
#[test]
fn local_blue_green_bad() {
    local_cell("blue-green", true);
}
#[test]
fn local_canary_good() {
    local_cell("canary", false);
}
#[test]
fn local_canary_bad() {
    local_cell("canary", true);
}
#[test]
fn local_feature_flag_good() {
    local_cell("feature-flag", false);
}
#[test]
fn local_feature_flag_bad() {
    local_cell("feature-flag", true);
}
#[test]
fn local_rolling_good() {
    local_cell("rolling", false);
}
#[test]
fn local_rolling_bad() {
    local_cell("rolling", true);
}

// ------------------------------------------------------------------ script x Prometheus, the edges

/// The shipped workflow on a script world, canary, with `extra` config and these queries.
fn script_run(
    w: ScriptWorld,
    extra: &str,
    queries_yaml: &str,
) -> (support::Output, support::Nginx) {
    let config = format!(
        "{SCRIPT_CONFIG}{extra}monitoring:\n  interval: 500ms\n  samples: 3\n  prometheus: {}\n{queries_yaml}",
        w.prom.url,
    );
    let ScriptWorld {
        t, nginx, _traffic, ..
    } = w;
    let out = t
        .file("runbook.yaml", &config)
        .file("answers.yaml", &format!("strategy: canary\n{ANSWERS}"))
        .args(&["deploy", "--answers", "answers.yaml", "--approve", "--yes"])
        .run();
    drop(_traffic);
    (out, nginx)
}

#[test]
fn script_slow_release_is_caught_by_the_latency_trigger() {
    let cell = "script-canary-slow";
    let w = script_world(cell, false, "", "v2");
    let (out, nginx) = script_run(w, "triggers:\n  response_time: 250ms\n", &queries(cell));
    let traffic = measured_split(nginx.port, 100);
    report(cell, &out, &traffic, detection_ms(&out, &["weight.sh"]));
    out.expect_status(3);
    assert!(
        rollback_reason(&out).contains("avg response"),
        "{}",
        out.describe()
    );
    assert_eq!(traffic, "v1 100%", "{}", out.describe());
}

#[test]
fn a_query_with_no_data_for_the_new_version_is_never_a_pass() {
    // v1 answers on blue; v2 never runs there: the query has data for the running version (the
    // check before production passes) and none for the new one. Documented outcome: no data is
    // inconclusive, an inconclusive window with nobody there follows monitoring.on_inconclusive
    // (rollback by default).
    let cell = "script-canary-nodata";
    let w = script_world(cell, false, "", "");
    let blue = std::fs::read_to_string(w.t.path().join("nginx/upstream.conf")).unwrap();
    let blue = blue
        .split("127.0.0.1:")
        .nth(1)
        .unwrap()
        .split([' ', ';'])
        .next()
        .unwrap()
        .to_string();
    let q = format!(
        "  queries:\n    error_rate: '(sum(rate(app_errors_total{{cell=\"{cell}\",version=\"{{{{version}}}}\",instance=\"127.0.0.1:{blue}\"}}[2s])) or vector(0)) / sum(rate(app_requests_total{{cell=\"{cell}\",version=\"{{{{version}}}}\",instance=\"127.0.0.1:{blue}\"}}[2s]))'\n"
    );
    let (out, nginx) = script_run(w, "", &q);
    let traffic = measured_split(nginx.port, 100);
    report(cell, &out, &traffic, None);
    out.expect_status(3);
    let why = rollback_reason(&out);
    assert!(
        why.contains("inconclusive") && why.contains("error rate"),
        "{why}\n{}",
        out.describe()
    );
    assert_eq!(traffic, "v1 100%", "{}", out.describe());
}

#[test]
fn a_mistyped_query_stops_the_run_before_production_is_touched() {
    let cell = "script-canary-typo";
    let w = script_world(cell, false, "", "");
    let dir = w.t.path().to_path_buf();
    let url = w.prom.url.clone();
    let q = format!(
        "  queries:\n    error_rate: 'sum(rate(app_errors_total{{cell=\"{cell}\"}}[2s]) /'\n"
    );
    let (out, nginx) = script_run(w, "", &q);
    let traffic = measured_split(nginx.port, 100);
    report(cell, &out, &traffic, None);
    // Stopped at the prerequisites, before staging. Prometheus words its parse error in its
    // own way (it changes between its versions): the rest is pinned.
    out.expect_status(2)
        .expect_stdout_like("▶ <shipped>/runbooks/deploy.rhai — feature `shop`\n  run directory: deployments/<date>-shop\nDeploying shop v2 (now running: v1) with the script adapter\n\n━━ Prerequisites ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\n\nPrerequisites\n- [x] Feature development complete (answers file answers.yaml)\n- [x] All tests passing (answers file answers.yaml)\n- [x] Code review approved (answers file answers.yaml)\n- [x] Documentation updated (answers file answers.yaml)\n✗ Prerequisites ([..])\n  artifacts in deployments/<date>-shop: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, pre-deployment-checklist.md\n")
        .expect_stderr_like(&format!(
            "error: monitoring: Error Rate (query sum(rate(app_errors_total{{cell=\"{cell}\"}}[2s]) / at {url}) cannot be read: {url}: Prometheus answered bad_data (HTTP 400): [..]parse error[..]. Fix the source before deploying: production was not touched.\n\
             warning: the run ended (stopped) before the prompts of 3 answer(s) in `answers.yaml` were reached: pre-deployment-checklist, staging-deployment-successful-proceed-to-production, strategy\n"
        ));
    assert!(
        !dir.join("apps/staging/version").exists(),
        "a deploy ran\n{}",
        out.describe()
    );
    assert_eq!(traffic, "v1 100%", "{}", out.describe());
}

#[test]
fn a_prometheus_stopped_mid_window_is_never_a_silent_pass() {
    // A good release, and a Prometheus of its own that dies once monitoring has begun.
    let cell = "script-canary-promdown";
    let w = script_world(cell, false, "", "");
    let ports: Vec<String> = std::fs::read_to_string(w.prom.targets.join(format!("{cell}.json")))
        .unwrap()
        .split('"')
        .filter(|s| s.starts_with("127.0.0.1:"))
        .map(str::to_string)
        .collect();
    let mut own = support::Prometheus::start(&ports, "500ms");
    own.wait_for_series("sum(rate(app_requests_total{version=\"v1\"}[2s]))");
    let config = format!(
        "{SCRIPT_CONFIG}monitoring:\n  interval: 500ms\n  samples: 3\n  prometheus: {}\n{}",
        own.url,
        queries(cell).replace(&format!("cell=\"{cell}\","), "")
    );
    let ScriptWorld {
        t, nginx, _traffic, ..
    } = w;
    let t = t
        .file("runbook.yaml", &config)
        .file("answers.yaml", &format!("strategy: canary\n{ANSWERS}"))
        .args(&["deploy", "--answers", "answers.yaml", "--approve", "--yes"]);
    let dir = t.path().to_path_buf();
    let child = t
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill Prometheus at the first measurement of the first window.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let journal = std::fs::read_dir(dir.join("deployments"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read_to_string(e.ok()?.path().join("journal.jsonl")).ok())
            .unwrap_or_default();
        if journal.contains("\"type\":\"measurement\"") {
            break;
        }
        assert!(Instant::now() < deadline, "monitoring never began");
        std::thread::sleep(Duration::from_millis(20));
    }
    own.kill();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let code = output.status.code().unwrap_or(-1);
    // Prometheus is killed while the run goes on: the run is spawned, not the builder's, and
    // every check below shows all it printed.
    let all = format!(
        "--- status\n{code}\n--- stdout\n{stdout}--- stderr\n{}--- end",
        String::from_utf8_lossy(&output.stderr)
    );
    let traffic = measured_split(nginx.port, 100);
    println!(
        "MATRIX | {cell} | {code} | {traffic} | - | {}",
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("Rolling back: "))
            .unwrap_or("")
    );
    // Not a pass, and not "the release was found bad" (3) either: the run could not judge it.
    assert_eq!(
        code, 5,
        "a dead metrics source must not pass a release\n{all}"
    );
    let dead = format!(
        "error rate: 5 provider errors in a row, more than the 4 tolerated (consecutive_error_limit); last: error: {}: cannot connect: tcp connect error: Connection refused (os error 111)",
        own.url
    );
    for want in [
        format!("Monitoring 20%: error: {dead}"),
        format!("↩ Rolled back because the run could not judge the release (exit 5): monitoring could not measure: v2 at 20%: {dead}"),
    ] {
        assert!(
            stdout.lines().any(|l| l == want),
            "stdout has no line {want:?}\n{all}"
        );
    }
    assert_eq!(traffic, "v1 100%", "{all}");
}

// ------------------------------------------------------------------ the documented example config

fn hook(_path: &str) -> (u16, String) {
    (200, "ok".to_string())
}

#[test]
fn the_documented_example_config_runs_as_shipped() {
    // docs/runbook.example.yaml with every key it documents uncommented, as a team would start;
    // only the URLs (Prometheus, the Slack and webhook endpoints) point at servers on loopback,
    // and the intervals are short. The team's commands (./deploy.sh, ./scripts/*.sh, npm, snyk)
    // are theirs to provide: here each records its call and succeeds.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/runbook.example.yaml"
    ))
    .unwrap();
    let keys = support::documented_keys(&text);
    let prom = support::Server::start(support::prometheus_at_zero);
    let slack = support::Server::start(hook);
    let ops = support::Server::start(hook);
    let config = keys
        .replace("http://prometheus:9090", &prom.url(""))
        .replace("https://hooks.slack.com/services/...", &slack.url("/slack"))
        .replace("https://ops.example.com/hooks/deploy", &ops.url("/ops"));
    assert!(
        config.contains("adapter: script") && config.contains("prometheus: http://127.0.0.1"),
        "{config}"
    );
    let record = "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> calls.log\n";
    let t = Test::new()
        .file("runbook.yaml", &config)
        .file("answers.yaml", &format!("strategy: canary\n{ANSWERS}"))
        .executable("deploy.sh", record)
        .executable("scripts/health-check.sh", record)
        .executable("scripts/switch-traffic.sh", record)
        .executable("scripts/feature-flag.sh", record)
        .executable("scripts/set-weight.sh", record)
        .executable("bin/npm", record)
        .executable("bin/snyk", record);
    let path = format!(
        "{}/bin:{}",
        t.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = t
        .env("PATH", &path)
        .args(&[
            "deploy",
            "--answers",
            "answers.yaml",
            "--approve",
            "--yes",
            "--set",
            "monitoring.interval=100ms",
            "--set",
            "monitoring.samples=2",
        ])
        .run();
    let calls = std::fs::read_to_string(out.dir.join("calls.log")).unwrap_or_default();
    println!(
        "MATRIX | docs/runbook.example.yaml (script, canary) | {} | - | - |",
        out.code
    );
    // Shown with the run when a check fails (the test's output is printed then).
    println!("--- calls.log\n{calls}");
    out.expect_status(0);
    for want in [
        "npm test",
        "npm run build",
        "deploy.sh staging",
        "npm run test:smoke -- staging",
        "set-weight.sh green 5 blue 95",
        "set-weight.sh green 100 blue 0",
    ] {
        assert!(calls.contains(want), "missing `{want}`\n{calls}");
    }
    assert!(
        slack
            .bodies()
            .iter()
            .any(|(_, b)| b.contains("checkout-v2")),
        "the team channel heard nothing: {:?}",
        slack.bodies()
    );
}
