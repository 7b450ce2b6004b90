//! Load tool: generate + decrypt over mTLS with keep-alive, at several concurrencies, against
//! our `kes` and MinIO's `minio-kes`, both with a filesystem keystore and a warm cache.
//!
//! ```text
//! cargo build --release -p sidecar-kes --bin kes --bin kes-bench
//! eval "$(e2e/peers/env)"; target/release/kes-bench [SECONDS_PER_LEVEL]
//! ```
//! Prints ops/s (one op = one generate and one decrypt), p50 and p99 per server and level;
//! the two servers take turns in short rounds so a changing machine load hits both alike.

use sidecar_kes::auth::ApiKey;
use sidecar_kes::client::{ClientConfig, ClientIdentity, KesClient};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    name: &'static str,
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(name: &'static str, bin: &str, admin: &ApiKey) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).unwrap();
    let port = free_port();
    let config = format!(
        "address: 127.0.0.1:{port}\nadmin:\n  identity: {id}\ntls:\n  key: {d}/tls.key\n  cert: {d}/tls.crt\ncache:\n  expiry:\n    any: 5m\n    unused: 5m\nkeystore:\n  fs:\n    path: {d}/keys\n",
        id = admin.identity(),
        d = dir.path().display()
    );
    std::fs::write(dir.path().join("config.yml"), config).unwrap();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let child = Command::new(bin)
        .args(["server", "--config"])
        .arg(dir.path().join("config.yml"))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("start {bin}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{name} did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Server {
        name,
        child,
        endpoint: format!("https://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// CPU time (user + system) a process has used so far, from /proc (Linux).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ = 100 on Linux
}

struct Result {
    ops_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs `concurrency` loops of generate+decrypt for `secs`; returns the latencies and the time.
async fn run_level(client: &KesClient, concurrency: usize, secs: f64) -> (Vec<Duration>, f64) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let dek = c
                    .generate_key("bench-key", b"{\"bucket\":\"bucket/object\"}")
                    .await
                    .expect("generate");
                let pt = c
                    .decrypt_key(
                        "bench-key",
                        &dek.ciphertext,
                        b"{\"bucket\":\"bucket/object\"}",
                    )
                    .await
                    .expect("decrypt");
                assert_eq!(&pt[..], &dek.plaintext[..]);
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let start = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (all, start.elapsed().as_secs_f64().max(secs))
}

fn summarize(mut all: Vec<Duration>, elapsed: f64) -> Result {
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Result {
        ops_per_sec: all.len() as f64 / elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

/// Rounds per level: the servers take turns so that a change in the machine's load hits both.
const ROUNDS: usize = 4;

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(8.0);
    let exe = std::env::current_exe().unwrap();
    let ours = exe.parent().unwrap().join("kes");
    let admin = ApiKey::generate();
    let servers = [
        start("coffer kes", ours.to_str().unwrap(), &admin),
        start("minio-kes", "minio-kes", &admin),
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let clients: Vec<KesClient> = servers
        .iter()
        .map(|s| {
            KesClient::new(ClientConfig {
                endpoints: vec![s.endpoint.clone()],
                identity: ClientIdentity::ApiKey(admin.to_secret_string().to_string()),
                ca_pems: vec![],
                insecure_skip_verify: true,
            })
            .unwrap()
        })
        .collect();
    rt.block_on(async {
        for c in &clients {
            c.create_key("bench-key").await.unwrap();
            for _ in 0..200 {
                c.generate_key("bench-key", b"").await.unwrap(); // warm cache and connections
            }
        }
        for level in [1, 16, 64] {
            let mut results: Vec<(Vec<Duration>, f64)> = vec![(Vec::new(), 0.0), (Vec::new(), 0.0)];
            let mut cpu = [Duration::ZERO; 2];
            for _ in 0..ROUNDS {
                for (i, c) in clients.iter().enumerate() {
                    let before = cpu_time(servers[i].child.id());
                    let (lat, t) = run_level(c, level, secs / ROUNDS as f64).await;
                    cpu[i] += cpu_time(servers[i].child.id()).saturating_sub(before);
                    results[i].0.extend(lat);
                    results[i].1 += t;
                }
            }
            let cpu_per_op: Vec<f64> =
                (0..2).map(|i| cpu[i].as_secs_f64() * 1e6 / results[i].0.len().max(1) as f64).collect();
            let r: Vec<Result> = results.into_iter().map(|(l, t)| summarize(l, t)).collect();
            for (i, (s, r)) in servers.iter().zip(&r).enumerate() {
                println!(
                    "{:<11} c={:<3} {:>9.1} ops/s  p50 {:>8.2?}  p99 {:>8.2?}  server CPU {:>6.1} µs/op",
                    s.name, level, r.ops_per_sec, r.p50, r.p99, cpu_per_op[i]
                );
            }
            println!(
                "c={level:<3} ratio ops/s {:.2}x, p99 {:.2}x, server CPU per op {:.2}x",
                r[0].ops_per_sec / r[1].ops_per_sec,
                r[0].p99.as_secs_f64() / r[1].p99.as_secs_f64(),
                cpu_per_op[0] / cpu_per_op[1]
            );
        }
    });
}
