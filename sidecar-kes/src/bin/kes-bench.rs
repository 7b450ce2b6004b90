//! Load tool: generate + decrypt over mTLS with keep-alive, at several concurrencies, against
//! our `kes` and MinIO's `minio-kes`, both with a filesystem keystore and a warm cache.
//!
//! ```text
//! cargo build --release -p sidecar-kes --bin kes --bin kes-bench
//! eval "$(e2e/peers/env)"; target/release/kes-bench [SECONDS_PER_LEVEL]
//! ```
//! Prints ops/s (one op = one generate and one decrypt on one keep-alive connection per
//! concurrent client), p50 and p99 per server and level, and the CPU time per op of the server
//! and of the bench itself (from /proc); the two servers take turns in short rounds so a
//! changing machine load hits both alike.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sidecar_kes::auth::ApiKey;
use sidecar_kes::client::{ClientConfig, ClientIdentity, KesClient};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Server {
    name: &'static str,
    child: Child,
    endpoint: String,
    addr: String,
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
        addr: format!("127.0.0.1:{port}"),
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

/// A keep-alive HTTP/1.1 connection over mTLS. The bench speaks the wire protocol directly
/// (prebuilt bodies, no URL building, no pool) so that the client spends as little CPU per op
/// as possible: on a small machine the client shares the cores with the server it measures.
struct Conn {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: String,
    tls: Arc<rustls::ClientConfig>,
}

#[derive(serde::Deserialize)]
struct Generated {
    plaintext: String,
    ciphertext: String,
}

#[derive(serde::Deserialize)]
struct Decrypted {
    plaintext: String,
}

/// The bench's request context: base64 of `{"bucket":"bucket/object"}`, what object servers send.
const CONTEXT_B64: &str = "eyJidWNrZXQiOiJidWNrZXQvb2JqZWN0In0=";

impl Conn {
    async fn open(addr: &str, tls: Arc<rustls::ClientConfig>) -> Conn {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tcp.set_nodelay(true).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .expect("tls handshake");
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("http handshake");
        tokio::spawn(conn);
        Conn {
            send,
            addr: addr.to_string(),
            tls,
        }
    }

    /// Reopens the connection if the server closed it while it was idle (between levels).
    async fn reopen_if_closed(&mut self) {
        if self.send.is_closed() || self.send.ready().await.is_err() {
            *self = Conn::open(&self.addr, self.tls.clone()).await;
        }
    }

    async fn post(&mut self, path: &'static str, body: Bytes) -> Bytes {
        let req = http::Request::post(path)
            .header(http::header::HOST, "localhost")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .unwrap();
        self.send.ready().await.expect("connection");
        let resp = self.send.send_request(req).await.expect("request");
        assert_eq!(resp.status(), 200, "{path}");
        resp.into_body().collect().await.expect("body").to_bytes()
    }

    /// One op: generate a data key, decrypt its ciphertext, check the plaintexts match.
    async fn generate_and_decrypt(&mut self) {
        let generate =
            Bytes::from_static(b"{\"context\":\"eyJidWNrZXQiOiJidWNrZXQvb2JqZWN0In0=\"}");
        let g: Generated =
            serde_json::from_slice(&self.post("/v1/key/generate/bench-key", generate).await)
                .expect("generate response");
        let body = format!(
            "{{\"ciphertext\":\"{}\",\"context\":\"{CONTEXT_B64}\"}}",
            g.ciphertext
        );
        let d: Decrypted =
            serde_json::from_slice(&self.post("/v1/key/decrypt/bench-key", body.into()).await)
                .expect("decrypt response");
        // Both are the standard base64 of the same 32 bytes.
        assert_eq!(d.plaintext, g.plaintext);
    }
}

/// Runs `concurrency` loops of generate+decrypt for `secs`, one connection each; returns the
/// latencies and the time.
async fn run_level(conns: &mut Vec<Conn>, concurrency: usize, secs: f64) -> (Vec<Duration>, f64) {
    let mut tasks = Vec::new();
    for c in conns.iter_mut().take(concurrency) {
        c.reopen_if_closed().await;
    }
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    for mut c in conns.drain(..concurrency) {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            while Instant::now() < deadline {
                let t = Instant::now();
                c.generate_and_decrypt().await;
                lat.push(t.elapsed());
            }
            (c, lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let (c, lat) = t.await.unwrap();
        conns.push(c);
        all.extend(lat);
    }
    (all, start.elapsed().as_secs_f64())
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
const LEVELS: [usize; 3] = [1, 16, 64];

struct Args {
    secs: f64,
    client_threads: usize,
}

fn args() -> Args {
    let mut a = Args {
        secs: 8.0,
        client_threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--client-threads" => {
                a.client_threads = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--client-threads N")
            }
            "-h" | "--help" => {
                println!(
                    "usage: kes-bench [SECONDS_PER_LEVEL] [--client-threads N]\n\
                    --client-threads  worker threads of the load generator (default 1; 0 = current-thread runtime)"
                );
                std::process::exit(0);
            }
            v => {
                a.secs = v
                    .parse()
                    .unwrap_or_else(|_| panic!("unknown argument '{v}'"))
            }
        }
    }
    a
}

fn main() {
    let args = args();
    let exe = std::env::current_exe().unwrap();
    let ours = exe.parent().unwrap().join("kes");
    let admin = ApiKey::generate();
    let servers = [
        start("coffer kes", ours.to_str().unwrap(), &admin),
        start("minio-kes", "minio-kes", &admin),
    ];
    let rt = if args.client_threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.client_threads)
            .enable_all()
            .build()
    }
    .unwrap();
    let client_cfg = ClientConfig {
        endpoints: vec![],
        identity: ClientIdentity::ApiKey(admin.to_secret_string().to_string()),
        ca_pems: vec![],
        insecure_skip_verify: true,
    };
    let tls = Arc::new(sidecar_kes::client::tls::rustls_config(&client_cfg).unwrap());
    rt.block_on(async {
        let mut conns: Vec<Vec<Conn>> = Vec::new();
        for s in &servers {
            let c = KesClient::new(ClientConfig {
                endpoints: vec![s.endpoint.clone()],
                ..client_cfg.clone()
            })
            .unwrap();
            c.create_key("bench-key").await.unwrap();
            let mut pool = Vec::new();
            for _ in 0..LEVELS[LEVELS.len() - 1] {
                let mut conn = Conn::open(&s.addr, tls.clone()).await;
                conn.generate_and_decrypt().await; // warm the cache and the connection
                pool.push(conn);
            }
            conns.push(pool);
        }
        println!(
            "{:.1} s per level and server, {ROUNDS} interleaved rounds; client runtime threads {}",
            args.secs, args.client_threads
        );
        for level in LEVELS {
            let mut results: Vec<(Vec<Duration>, f64)> = vec![(Vec::new(), 0.0), (Vec::new(), 0.0)];
            let mut cpu = [Duration::ZERO; 2];
            let mut client_cpu = [Duration::ZERO; 2];
            for _ in 0..ROUNDS {
                for (i, pool) in conns.iter_mut().enumerate() {
                    let before = cpu_time(servers[i].child.id());
                    let client_before = cpu_time(std::process::id());
                    let (lat, t) = run_level(pool, level, args.secs / ROUNDS as f64).await;
                    cpu[i] += cpu_time(servers[i].child.id()).saturating_sub(before);
                    client_cpu[i] += cpu_time(std::process::id()).saturating_sub(client_before);
                    results[i].0.extend(lat);
                    results[i].1 += t;
                }
            }
            let per_op = |d: Duration, i: usize| d.as_secs_f64() * 1e6 / results[i].0.len().max(1) as f64;
            let cpu_per_op: Vec<f64> = (0..2).map(|i| per_op(cpu[i], i)).collect();
            let client_per_op: Vec<f64> = (0..2).map(|i| per_op(client_cpu[i], i)).collect();
            let r: Vec<Result> = results.into_iter().map(|(l, t)| summarize(l, t)).collect();
            for (i, (s, r)) in servers.iter().zip(&r).enumerate() {
                println!(
                    "{:<11} c={:<3} {:>9.1} ops/s  p50 {:>8.2?}  p99 {:>8.2?}  server CPU {:>6.1} µs/op  client CPU {:>5.1} µs/op",
                    s.name, level, r.ops_per_sec, r.p50, r.p99, cpu_per_op[i], client_per_op[i]
                );
            }
            println!(
                "c={level:<3} ratio ops/s {:.2}x, p50 {:.2}x, p99 {:.2}x, server CPU per op {:.2}x",
                r[0].ops_per_sec / r[1].ops_per_sec,
                r[0].p50.as_secs_f64() / r[1].p50.as_secs_f64(),
                r[0].p99.as_secs_f64() / r[1].p99.as_secs_f64(),
                cpu_per_op[0] / cpu_per_op[1]
            );
        }
    });
}
