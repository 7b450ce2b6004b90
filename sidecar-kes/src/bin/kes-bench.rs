//! Load tool: generate + decrypt over mTLS with keep-alive, at concurrency 1, 16 and 64, against
//! our `kes` and MinIO's `minio-kes`, both with a filesystem keystore and a warm cache.
//!
//! ```text
//! cargo build --release -p sidecar-kes --bin kes --bin kes-bench
//! eval "$(e2e/peers/env)"; target/release/kes-bench [SECONDS_PER_LEVEL] [--levels 1,16,64] [--no-pin]
//!     [--baseline PATH]
//! ```
//! One op is a generate and a decrypt of its ciphertext (the plaintexts are compared) on one
//! keep-alive connection per concurrent client. For each server and level it prints ops/s, p50 and
//! p99 of an op, the CPU time per op of the server and of the load generator (from /proc), and how
//! busy each of their cores was (from /proc/stat). Each level runs in 4 rounds in which the two
//! servers take turns (the first alternates), so a change in the machine's load hits both alike;
//! every round opens fresh connections and warms them with one op before the clock starts.
//! `--baseline PATH` adds a third server, another build of our `kes` (e.g. the one before a
//! change), to the same rounds, and prints ours/baseline next to ours/minio: a before/after
//! comparison under the same machine load.
//!
//! Layout: by default each server under test is pinned to the last CPU the bench may use and the
//! bench to the first, as if the load came from another host: the server has one whole core and
//! the client never takes CPU from it (on loopback about two thirds of a small request's cost is
//! kernel TCP, paid by whichever side sends, so a client sharing the cores caps the ratio near
//! (client + MinIO) / (client + ours)). Both servers get the same single core: Go sizes GOMAXPROCS
//! from the affinity mask, our server one connection thread per allowed CPU. `--no-pin` turns
//! the pinning off. The load generator speaks HTTP/1.1 over mTLS itself on a single-threaded
//! runtime: one write per request (one TLS record), one read buffer per connection, no pool and
//! no per-request task, so that one core of it can keep one core of our server saturated.
//! Method and measured numbers: the Benchmark section of sidecar-kes/README.md.

use sidecar_kes::auth::ApiKey;
use sidecar_kes::client::{ClientConfig, ClientIdentity, KesClient};
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Server {
    name: String,
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

/// Starts `bin` as a KES server with a filesystem keystore; it inherits the calling thread's
/// CPU affinity.
fn start(name: &str, bin: &str, admin: &ApiKey) -> Server {
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
        name: name.to_string(),
        child,
        endpoint: format!("https://127.0.0.1:{port}"),
        addr: format!("127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// The CPUs the calling thread may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data (all zero = empty set); the kernel fills at most its size.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        set
    };
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `c` is below CPU_SETSIZE, the number of CPUs a cpu_set_t holds.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Pins the calling thread to `cpu`; threads and processes it starts afterwards inherit that.
fn pin_to(cpu: usize) {
    // SAFETY: as in `allowed_cpus`; `cpu` comes from the allowed set, so it is below CPU_SETSIZE.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(
        rc,
        0,
        "pin to CPU {cpu}: {}",
        std::io::Error::last_os_error()
    );
}

/// A field of /proc/PID/status, e.g. `Threads` or `Cpus_allowed_list`.
fn proc_status(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or("?")
        .trim()
        .to_string()
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

/// Busy and total time of one CPU so far, in ticks, from /proc/stat. Busy counts interrupt and
/// softirq time too (the kernel's TCP receive work), which per-process times may leave out.
fn core_ticks(cpu: usize) -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let prefix = format!("cpu{cpu} ");
    let Some(line) = stat.lines().find(|l| l.starts_with(&prefix)) else {
        return (0, 0);
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let get = |i: usize| f.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let busy = get(0) + get(1) + get(2) + get(5) + get(6);
    (busy, busy + get(3) + get(4) + get(7))
}

/// A keep-alive HTTP/1.1 connection over mTLS, spoken directly: each request is built in one
/// buffer and sent in one write (one TLS record), each response read into one buffer.
struct Conn {
    tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    request: Vec<u8>,
    response: Vec<u8>,
    decrypt_body: Vec<u8>,
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
const GENERATE_BODY: &[u8] = b"{\"context\":\"eyJidWNrZXQiOiJidWNrZXQvb2JqZWN0In0=\"}";

/// Where a complete response's body lies in `buf`, or None if more bytes are needed.
fn complete_response(buf: &[u8]) -> Option<std::ops::Range<usize>> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).expect("response head is not UTF-8");
    let status = head.get(9..12);
    assert_eq!(status, Some("200"), "response: {head}");
    let length: usize = head
        .split("\r\n")
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().expect("Content-Length"))
        })
        .unwrap_or_else(|| panic!("response without Content-Length: {head}"));
    (buf.len() >= head_end + length).then_some(head_end..head_end + length)
}

impl Conn {
    async fn open(addr: &str, tls: &Arc<rustls::ClientConfig>) -> Conn {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tcp.set_nodelay(true).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .expect("tls handshake");
        Conn {
            tls,
            request: Vec::with_capacity(1024),
            response: Vec::with_capacity(16 << 10),
            decrypt_body: Vec::with_capacity(512),
        }
    }

    /// Sends a POST and returns the body of its 200 response.
    async fn post(&mut self, path: &str, body: &[u8]) -> &[u8] {
        self.request.clear();
        write!(
            self.request,
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        self.request.extend_from_slice(body);
        self.tls.write_all(&self.request).await.expect("send");
        self.tls.flush().await.expect("send");
        self.response.clear();
        let body = loop {
            if let Some(body) = complete_response(&self.response) {
                break body;
            }
            let n = self
                .tls
                .read_buf(&mut self.response)
                .await
                .expect("receive");
            assert!(n > 0, "{path}: server closed the connection");
        };
        &self.response[body]
    }

    /// One op: generate a data key, decrypt its ciphertext, check the plaintexts match.
    async fn generate_and_decrypt(&mut self) {
        let g: Generated =
            serde_json::from_slice(self.post("/v1/key/generate/bench-key", GENERATE_BODY).await)
                .expect("generate response");
        let mut body = std::mem::take(&mut self.decrypt_body);
        body.clear();
        write!(
            body,
            "{{\"ciphertext\":\"{}\",\"context\":\"{CONTEXT_B64}\"}}",
            g.ciphertext
        )
        .unwrap();
        let d: Decrypted =
            serde_json::from_slice(self.post("/v1/key/decrypt/bench-key", &body).await)
                .expect("decrypt response");
        self.decrypt_body = body;
        // Both are the standard base64 of the same 32 bytes.
        assert_eq!(d.plaintext, g.plaintext);
    }
}

/// Opens `concurrency` connections and warms each with one op (not timed).
async fn open_warm(addr: &str, tls: &Arc<rustls::ClientConfig>, concurrency: usize) -> Vec<Conn> {
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (addr, tls) = (addr.to_string(), tls.clone());
            tokio::spawn(async move {
                let mut c = Conn::open(&addr, &tls).await;
                c.generate_and_decrypt().await;
                c
            })
        })
        .collect();
    let mut conns = Vec::new();
    for t in tasks {
        conns.push(t.await.unwrap());
    }
    conns
}

/// Runs one loop of generate+decrypt per connection for `secs`; returns the latencies and the
/// time.
async fn run_round(conns: Vec<Conn>, secs: f64) -> (Vec<Duration>, f64) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(1 << 16);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    c.generate_and_decrypt().await;
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (all, start.elapsed().as_secs_f64())
}

/// What one server did at one level, summed over the rounds.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    secs: f64,
    server_cpu: Duration,
    client_cpu: Duration,
    /// Busy and total ticks of the server's and of the client's core.
    server_core: (u64, u64),
    client_core: (u64, u64),
}

impl Tally {
    fn ops_per_sec(&self) -> f64 {
        self.latencies.len() as f64 / self.secs
    }

    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort_unstable();
        let n = self.latencies.len();
        self.latencies[((n as f64 * p) as usize).min(n - 1)]
    }

    fn micros_per_op(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / self.latencies.len().max(1) as f64
    }

    fn percent_of_wall(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 100.0 / self.secs
    }
}

fn percent((busy, total): (u64, u64)) -> String {
    if total == 0 {
        "  -".into()
    } else {
        format!("{:3.0}", busy as f64 * 100.0 / total as f64)
    }
}

/// Rounds per level: the servers take turns so that a change in the machine's load hits both.
const ROUNDS: usize = 4;

struct Args {
    secs: f64,
    levels: Vec<usize>,
    pin: bool,
    client_threads: usize,
    baseline: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        secs: 8.0,
        levels: vec![1, 16, 64],
        pin: true,
        client_threads: 0,
        baseline: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--no-pin" => a.pin = false,
            "--levels" => {
                a.levels = it
                    .next()
                    .and_then(|v| v.split(',').map(|l| l.parse().ok()).collect())
                    .filter(|l: &Vec<usize>| !l.is_empty() && !l.contains(&0))
                    .expect("--levels N,N,...")
            }
            "--client-threads" => {
                a.client_threads = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--client-threads N")
            }
            "--baseline" => a.baseline = Some(it.next().expect("--baseline PATH")),
            "-h" | "--help" => {
                println!(
                    "usage: kes-bench [SECONDS_PER_LEVEL] [--levels N,N,..] [--no-pin] [--client-threads N]\n\
                    \x20                [--baseline PATH]\n\
                    SECONDS_PER_LEVEL  per server and level, split over {ROUNDS} rounds (default 8)\n\
                    --levels           concurrencies to run (default 1,16,64)\n\
                    --no-pin           run servers and load generator on any CPU (default: each server\n\
                    \x20                  pinned to the last allowed CPU, the load generator to the first)\n\
                    --client-threads   worker threads of the load generator (default 0 = single-threaded)\n\
                    --baseline PATH    also run this other build of our kes in the same rounds and print\n\
                    \x20                  ours/baseline (a before/after comparison)"
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
    let cpus = allowed_cpus();
    // (server core, client core), when pinned.
    let layout = match (args.pin, cpus.first(), cpus.last()) {
        (true, Some(&first), Some(&last)) if first != last => Some((last, first)),
        (true, ..) => {
            eprintln!("only one CPU allowed ({cpus:?}): not pinning");
            None
        }
        _ => None,
    };
    if let Some((server_cpu, _)) = layout {
        pin_to(server_cpu); // the servers inherit it
    }
    let mut servers = vec![
        start("coffer kes", ours.to_str().unwrap(), &admin),
        start("minio-kes", "minio-kes", &admin),
    ];
    if let Some(path) = &args.baseline {
        servers.push(start("baseline", path, &admin));
    }
    if let Some((_, client_cpu)) = layout {
        pin_to(client_cpu); // before the runtime starts its threads
    }
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
        ca_files: vec![],
        insecure_skip_verify: true,
    };
    let tls = Arc::new(sidecar_kes::client::tls::rustls_config(&client_cfg).unwrap());
    rt.block_on(async {
        for s in &servers {
            let c = KesClient::new(ClientConfig {
                endpoints: vec![s.endpoint.clone()],
                ..client_cfg.clone()
            })
            .unwrap();
            c.create_key("bench-key").await.unwrap();
            drop(open_warm(&s.addr, &tls, 1).await); // the key is in the cache
        }
        let runtime = match args.client_threads {
            0 => "single-threaded".to_string(),
            n => format!("{n} worker threads"),
        };
        match layout {
            Some((server_cpu, client_cpu)) => println!(
                "layout: servers under test on CPU {server_cpu}, load generator ({runtime}) on CPU {client_cpu}"
            ),
            None => println!("layout: not pinned (CPUs {cpus:?} shared); load generator {runtime}"),
        }
        for s in &servers {
            let pid = s.child.id();
            println!(
                "  {:<11} pid {pid}: CPUs {}, {} threads",
                s.name,
                proc_status(pid, "Cpus_allowed_list"),
                proc_status(pid, "Threads")
            );
        }
        println!(
            "{:.1} s per level and server, {ROUNDS} interleaved rounds; CPU per op from /proc, core busy % from /proc/stat",
            args.secs
        );
        let me = std::process::id();
        let (server_core, client_core) = layout.unzip();
        let ticks = |cpu: Option<usize>| cpu.map_or((0, 0), core_ticks);
        for &level in &args.levels {
            let mut tally: Vec<Tally> = servers.iter().map(|_| Tally::default()).collect();
            for round in 0..ROUNDS {
                for k in 0..servers.len() {
                    let i = (round + k) % servers.len();
                    let conns = open_warm(&servers[i].addr, &tls, level).await;
                    let (pid, t) = (servers[i].child.id(), &mut tally[i]);
                    let (cpu0, client0) = (cpu_time(pid), cpu_time(me));
                    let (sc0, cc0) = (ticks(server_core), ticks(client_core));
                    let (lat, secs) = run_round(conns, args.secs / ROUNDS as f64).await;
                    let (sc1, cc1) = (ticks(server_core), ticks(client_core));
                    t.server_cpu += cpu_time(pid).saturating_sub(cpu0);
                    t.client_cpu += cpu_time(me).saturating_sub(client0);
                    t.server_core.0 += sc1.0 - sc0.0;
                    t.server_core.1 += sc1.1 - sc0.1;
                    t.client_core.0 += cc1.0 - cc0.0;
                    t.client_core.1 += cc1.1 - cc0.1;
                    t.latencies.extend(lat);
                    t.secs += secs;
                }
            }
            let mut lines = Vec::new();
            for (s, t) in servers.iter().zip(tally.iter_mut()) {
                let (p50, p99) = (t.percentile(0.50), t.percentile(0.99));
                lines.push((t.ops_per_sec(), p50, p99, t.micros_per_op(t.server_cpu)));
                println!(
                    "{:<11} c={:<3} {:>8.0} ops/s  p50 {:>8.2?}  p99 {:>8.2?}  server {:5.1} µs/op {:3.0}% (core {}%)  client {:5.1} µs/op {:3.0}% (core {}%)",
                    s.name,
                    level,
                    t.ops_per_sec(),
                    p50,
                    p99,
                    t.micros_per_op(t.server_cpu),
                    t.percent_of_wall(t.server_cpu),
                    percent(t.server_core),
                    t.micros_per_op(t.client_cpu),
                    t.percent_of_wall(t.client_cpu),
                    percent(t.client_core),
                );
            }
            let a = lines[0];
            for (b, other) in lines[1..].iter().zip(["minio", "baseline"]) {
                println!(
                    "c={level:<3} ratio ours/{other}: ops/s {:.2}x, p50 {:.2}x, p99 {:.2}x, server CPU per op {:.2}x",
                    a.0 / b.0,
                    a.1.as_secs_f64() / b.1.as_secs_f64(),
                    a.2.as_secs_f64() / b.2.as_secs_f64(),
                    a.3 / b.3
                );
            }
        }
    });
}
