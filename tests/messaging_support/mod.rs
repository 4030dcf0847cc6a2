//! Real servers for the messaging tests: a mosquitto broker (plain, password and TLS
//! listeners, certificates made with the openssl CLI), a pausable TCP proxy in front of
//! it, an MQTT subscriber, and a scripted HTTP server on a std `TcpListener`, plain or
//! HTTPS (rustls server side, same certificates as the broker's TLS listener).
#![allow(dead_code)] // Each test file uses part of the kit.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use acoupi::messaging::{deliver_due, DeliveryReport, Messenger};
use acoupi::store::outbox::{Order, Outbox};
use jiff::Timestamp;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use tempfile::TempDir;

pub const USER: &str = "recorder";
pub const PASSWORD: &str = "s3cret-pass";

/// A free loopback port (bound then released; the broker binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl req` arguments for a new P-256 key without a passphrase, for every
/// certificate the tests make.
const NEW_EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// Makes a CA (`<name>.pem`, `<name>.key`) in `dir`.
pub fn make_ca(dir: &Path, name: &str) -> PathBuf {
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509"])
        .args(NEW_EC_KEY)
        .args([
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]));
    dir.join(format!("{name}.pem"))
}

/// Makes `server.pem`/`server.key` (SAN: IP 127.0.0.1, DNS localhost) signed by the CA `ca`.
pub fn make_server_cert(dir: &Path, ca: &str) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .current_dir(dir)
        .arg("req")
        .args(NEW_EC_KEY)
        .args([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]));
    run(Command::new("openssl").current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        &format!("{ca}.pem"),
        "-CAkey",
        &format!("{ca}.key"),
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]));
}

/// In `dir`: the CA `ca` (`ca.pem`, `ca.key`), an unrelated CA `other-ca`, and
/// `server.pem`/`server.key` for 127.0.0.1 and localhost signed by `ca`.
pub fn make_pki(dir: &Path) {
    make_ca(dir, "ca");
    make_ca(dir, "other-ca");
    make_server_cert(dir, "ca");
}

/// Certificates of their own for a test server (see [`make_pki`]).
pub struct Pki {
    pub dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        make_pki(dir.path());
        Pki { dir }
    }

    /// The CA that signed the server certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A CA that signed nothing the server presents.
    pub fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

/// A mosquitto broker with three loopback listeners: anonymous, password, TLS. It logs
/// to `mosquitto.log` in its folder ([`Broker::log`]).
pub struct Broker {
    pub dir: TempDir,
    pub port: u16,
    pub auth_port: u16,
    pub tls_port: u16,
    child: Option<Child>,
}

impl Broker {
    pub fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_pki(d);
        run(Command::new("mosquitto_passwd")
            .args(["-c", "-b"])
            .arg(d.join("passwd"))
            .args([USER, PASSWORD]));
        let (port, auth_port, tls_port) = (free_port(), free_port(), free_port());
        let conf = format!(
            "per_listener_settings true\nuser root\npersistence false\nlog_dest stderr\nlog_dest file {log}\n\
             listener {port} 127.0.0.1\nallow_anonymous true\n\
             listener {auth_port} 127.0.0.1\nallow_anonymous false\npassword_file {pw}\n\
             listener {tls_port} 127.0.0.1\nallow_anonymous true\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n",
            log = d.join("mosquitto.log").display(),
            pw = d.join("passwd").display(),
            ca = d.join("ca.pem").display(),
            cert = d.join("server.pem").display(),
            key = d.join("server.key").display(),
        );
        std::fs::write(d.join("mosquitto.conf"), conf).unwrap();
        let mut broker = Broker {
            dir,
            port,
            auth_port,
            tls_port,
            child: None,
        };
        broker.restart();
        broker
    }

    /// Kills the broker (SIGKILL: no clean goodbye to clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same ports and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (apt-get install mosquitto)");
        self.child = Some(child);
        for port in [self.port, self.auth_port, self.tls_port] {
            wait_for_port(port);
        }
    }

    /// The broker's log so far (connections and how each one ended, across restarts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls until something listens on the port (bounded: 10 s).
pub fn wait_for_port(port: u16) {
    for _ in 0..1000 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}

/// A TCP proxy that can hold back everything the server sends (to lose acknowledgements
/// for a while without closing the connection).
pub struct Proxy {
    pub port: u16,
    paused: Arc<(Mutex<bool>, Condvar)>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let paused = Arc::new((Mutex::new(false), Condvar::new()));
        let gate = Arc::clone(&paused);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                thread::spawn(move || pipe(c2, s2, None));
                let gate = Arc::clone(&gate);
                thread::spawn(move || pipe(server, client, Some(gate)));
            }
        });
        Proxy { port, paused }
    }

    pub fn pause(&self) {
        *self.paused.0.lock().unwrap() = true;
    }

    pub fn resume(&self) {
        *self.paused.0.lock().unwrap() = false;
        self.paused.1.notify_all();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, gate: Option<Arc<(Mutex<bool>, Condvar)>>) {
    let mut buf = [0u8; 16384];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(gate) = &gate {
            let mut paused = gate.0.lock().unwrap();
            while *paused {
                paused = gate.1.wait(paused).unwrap();
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

/// One request the HTTP server received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the HTTP server answers.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16, &'static str),
    /// A redirect (301, 302, 307, …) to the URL or path given, with an empty body.
    Redirect(u16, String),
    /// Reads the request, then answers nothing until the client gives up.
    Silence,
}

/// A scripted HTTP/1.1 server: answers each request with the next scripted reply, or
/// the default once the script is used up. One request per connection. With TLS
/// ([`HttpServer::start_tls`]) the same exchange runs inside a rustls server session.
pub struct HttpServer {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    scheme: &'static str,
}

impl HttpServer {
    pub fn start(default: Reply) -> HttpServer {
        HttpServer::listen(default, None)
    }

    /// An HTTPS server presenting the PEM certificate chain `cert_pem` with the key
    /// `key_pem` (ring provider, as the client uses). A handshake the client refuses
    /// ends that connection before any request is recorded.
    pub fn start_tls(default: Reply, cert_pem: &Path, key_pem: &Path) -> HttpServer {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_pem)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key_pem).unwrap();
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap();
        HttpServer::listen(default, Some(Arc::new(config)))
    }

    fn listen(default: Reply, tls: Option<Arc<ServerConfig>>) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Mutex<VecDeque<Reply>>> = Arc::new(Mutex::new(VecDeque::new()));
        let (req, scr) = (Arc::clone(&requests), Arc::clone(&script));
        let scheme = if tls.is_some() { "https" } else { "http" };
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (req, scr, default) = (Arc::clone(&req), Arc::clone(&scr), default.clone());
                let tls = tls.clone();
                thread::spawn(move || match tls {
                    None => serve(stream, req, scr, default),
                    Some(config) => {
                        let session = ServerConnection::new(config).unwrap();
                        serve(StreamOwned::new(session, stream), req, scr, default)
                    }
                });
            }
        });
        HttpServer {
            port,
            requests,
            script,
            scheme,
        }
    }

    /// `http(s)://127.0.0.1:<port>/messages`.
    pub fn url(&self) -> String {
        self.url_at("127.0.0.1")
    }

    /// The messages URL with `host` (say, `localhost`) instead of the address.
    pub fn url_at(&self, host: &str) -> String {
        format!("{}://{host}:{}/messages", self.scheme, self.port)
    }

    pub fn then(&self, reply: Reply) -> &Self {
        self.script.lock().unwrap().push_back(reply);
        self
    }

    pub fn received(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// One request-reply exchange on a plain or TLS stream. A TLS stream does its handshake
/// on the first read, so a refused certificate shows here as a failed first read.
fn serve<S: Read + Write>(
    stream: S,
    requests: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    default: Reply,
) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    requests.lock().unwrap().push(Request {
        method,
        path,
        headers,
        body,
    });
    let reply = script.lock().unwrap().pop_front().unwrap_or(default);
    let (code, extra, text) = match reply {
        Reply::Status(code, text) => (code, String::new(), text),
        Reply::Redirect(code, location) => (code, format!("Location: {location}\r\n"), ""),
        Reply::Silence => {
            // Wait for the client to hang up (its timeout); read returns 0 then.
            let mut sink = [0u8; 64];
            let _ = reader.read(&mut sink);
            return;
        }
    };
    let response = format!(
        "HTTP/1.1 {code} X\r\nContent-Type: text/plain\r\nAllow: OPTIONS, POST\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    // The request is read in full: writing to the inner stream loses nothing from the
    // reader's buffer. Flushing pushes a TLS record out.
    let stream = reader.get_mut();
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

/// A received publish: topic, payload, retained flag.
pub type Publication = (String, Vec<u8>, bool);

/// Subscribes to `topic` on the broker (anonymous listener) and collects every publish.
pub struct Subscriber {
    pub received: Arc<Mutex<Vec<Publication>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    pub async fn start(port: u16, topic: &str) -> Subscriber {
        use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
        let id = format!("sub-{}", uuid::Uuid::new_v4());
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let topic = topic.to_owned();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        client
                            .subscribe(topic.clone(), QoS::AtLeastOnce)
                            .await
                            .unwrap();
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        sink.lock()
                            .unwrap()
                            .push((p.topic.clone(), p.payload.to_vec(), p.retain));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .unwrap()
            .unwrap();
        Subscriber { received, task }
    }

    /// Waits (bounded, 10 s) until `pred` holds for what was received.
    pub async fn wait_until(&self, pred: impl Fn(&[Publication]) -> bool) -> Vec<Publication> {
        for _ in 0..1000 {
            {
                let got = self.received.lock().unwrap();
                if pred(&got) {
                    return got.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "subscriber never saw the expected messages: {:?}",
            self.received.lock().unwrap()
        );
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An empty outbox in a fresh `messages.db`; the folder lives as long as the `TempDir`.
pub fn scratch_outbox() -> (TempDir, Outbox) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path().join("messages.db")).unwrap();
    (dir, outbox)
}

/// One delivery run at `now` of every due message, oldest first, to `messengers`.
pub async fn deliver_at(
    outbox: &Outbox,
    messengers: &[&dyn Messenger],
    now: Timestamp,
) -> DeliveryReport {
    deliver_due(outbox, messengers, None, Order::OldestFirst, now)
        .await
        .unwrap()
}
