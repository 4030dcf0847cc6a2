//! HTTP delivery, retry classification and checks against a real HTTP server on loopback,
//! plain and HTTPS (certificate signed by a test CA).

use crate::messaging_support;

use std::time::Duration;

use acoupi::messaging::config::{HttpConfig, MqttConfig, Secret};
use acoupi::messaging::http::{check_http, HttpMessenger};
use acoupi::messaging::mqtt::MqttMessenger;
use acoupi::messaging::{CheckError, Messenger};
use acoupi::store::outbox::Outbox;
use jiff::{SignedDuration, Timestamp};
use messaging_support::{deliver_at, scratch_outbox, Broker, HttpServer, Pki, Reply};

fn http(url: String) -> HttpConfig {
    HttpConfig {
        base_url: url,
        content_type: "application/json".into(),
        timeout: 1,
        bearer_token: None,
        username: None,
        password: None,
        ca_file: None,
    }
}

fn t0() -> Timestamp {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

fn after(s: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_posted_as_json_with_bearer_token_and_message_id() {
    let server = HttpServer::start(Reply::Status(200, "ok"));
    let mut cfg = http(server.url());
    cfg.bearer_token = Some(Secret::new("tok-123"));
    let messenger = HttpMessenger::new(&cfg).unwrap();
    assert!(!format!("{messenger:?}").contains("tok-123"));
    let (_dir, outbox) = scratch_outbox();
    let id = outbox
        .enqueue("heartbeat", "{\"status\":\"OK\"}", t0())
        .unwrap();
    let report = deliver_at(&outbox, &[&messenger], t0()).await;
    assert_eq!(report.sent, 1);
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("POST", "/messages")
    );
    assert_eq!(got[0].body, b"{\"status\":\"OK\"}");
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    assert_eq!(got[0].header("authorization"), Some("Bearer tok-123"));
    assert_eq!(
        got[0].header("x-acoupi-message-id"),
        Some(id.to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_is_sent_when_configured() {
    let server = HttpServer::start(Reply::Status(204, ""));
    let mut cfg = http(server.url());
    cfg.username = Some("rec".into());
    cfg.password = Some(Secret::new("pw"));
    let messenger = HttpMessenger::new(&cfg).unwrap();
    let (_dir, outbox) = scratch_outbox();
    outbox.enqueue("heartbeat", "{}", t0()).unwrap();
    deliver_at(&outbox, &[&messenger], t0()).await;
    // base64("rec:pw")
    assert_eq!(
        server.received()[0].header("authorization"),
        Some("Basic cmVjOnB3")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_is_retried_later_with_backoff() {
    let server = HttpServer::start(Reply::Status(200, "ok"));
    server
        .then(Reply::Status(500, "database down"))
        .then(Reply::Status(503, "busy"));
    let messenger = HttpMessenger::new(&http(server.url())).unwrap();
    let messengers = [&messenger as &dyn Messenger];
    let (_dir, outbox) = scratch_outbox();
    let id = outbox.enqueue("detection", "{}", t0()).unwrap();

    let first = deliver_at(&outbox, &messengers, t0()).await;
    assert_eq!(first.deferred, 1);
    let state = outbox.state(id).unwrap().unwrap();
    assert_eq!(state.attempts, 1);
    // First back-off: 10 s with jitter in [5 s, 10 s].
    assert!(
        state.next_attempt_at >= after(5) && state.next_attempt_at <= after(10),
        "{state:?}"
    );
    assert_eq!(deliver_at(&outbox, &messengers, after(4)).await.deferred, 0);
    assert_eq!(
        server.received().len(),
        1,
        "not retried before the back-off"
    );

    let second = deliver_at(&outbox, &messengers, after(10)).await;
    assert_eq!(second.deferred, 1);
    let state = outbox.state(id).unwrap().unwrap();
    // Second back-off doubles: [10 s, 20 s] after the attempt.
    assert!(
        state.next_attempt_at >= after(20) && state.next_attempt_at <= after(30),
        "{state:?}"
    );

    let third = deliver_at(&outbox, &messengers, after(30)).await;
    assert_eq!(third.sent, 1);
    assert_eq!(server.received().len(), 3);
    let stats = outbox.stats().unwrap();
    assert_eq!(
        (stats.queued, stats.sent, stats.failed_permanent),
        (0, 1, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_error_is_a_permanent_failure_with_its_reason_and_never_retried() {
    let server = HttpServer::start(Reply::Status(400, "bad payload"));
    let messenger = HttpMessenger::new(&http(server.url())).unwrap();
    let messengers = [&messenger as &dyn Messenger];
    let (_dir, outbox) = scratch_outbox();
    let id = outbox.enqueue("detection", "{}", t0()).unwrap();
    let report = deliver_at(&outbox, &messengers, t0()).await;
    assert_eq!((report.sent, report.failed, report.deferred), (0, 1, 0));
    let state = outbox.state(id).unwrap().unwrap();
    assert_eq!(
        state.permanent_failure.as_deref(),
        Some("http: HTTP 400: bad payload")
    );
    let later = deliver_at(&outbox, &messengers, after(100_000)).await;
    assert_eq!(later, Default::default());
    assert_eq!(server.received().len(), 1);
    assert_eq!(outbox.stats().unwrap().failed_permanent, 1);
}

/// A redirected POST is not followed: HTTP clients (ureq, like curl and requests) turn
/// it into a GET without the body, whose 2xx would count the message as delivered; and a
/// redirect to `https://` would be checked against roots other than `ca_file`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirected_post_is_not_followed_and_the_message_is_kept() {
    let server = HttpServer::start(Reply::Status(200, "ok"));
    let moved = format!("http://127.0.0.1:{}/moved", server.port);
    server.then(Reply::Redirect(302, moved.clone()));
    let messenger = HttpMessenger::new(&http(server.url())).unwrap();
    let (_dir, outbox) = scratch_outbox();
    let id = outbox.enqueue("detection", "{}", t0()).unwrap();
    let report = deliver_at(&outbox, &[&messenger], t0()).await;
    assert_eq!((report.sent, report.deferred), (0, 1));
    let got = server.received();
    assert_eq!(got.len(), 1, "the redirect was followed: {got:?}");
    assert_eq!(
        responses(&outbox, id),
        [(
            2,
            format!("HTTP 302: redirected to {moved}, not followed: set base_url to the final URL")
        )]
    );
    assert_eq!(outbox.stats().unwrap().queued, 1);

    server.then(Reply::Redirect(301, moved.clone()));
    let err = check_http(&http(server.url()), Duration::from_secs(2)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} rejected by the server: HTTP 301: redirected to {moved}, not followed: set base_url to the final URL",
            server.url()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_post_times_out_and_its_resend_is_a_possible_duplicate() {
    let server = HttpServer::start(Reply::Status(200, "ok"));
    server.then(Reply::Silence);
    let messenger = HttpMessenger::new(&http(server.url())).unwrap();
    let messengers = [&messenger as &dyn Messenger];
    let (_dir, outbox) = scratch_outbox();
    outbox.enqueue("detection", "{}", t0()).unwrap();
    assert_eq!(deliver_at(&outbox, &messengers, t0()).await.deferred, 1);
    assert_eq!(deliver_at(&outbox, &messengers, after(60)).await.sent, 1);
    let got = server.received();
    assert_eq!(got.len(), 2, "the server saw the message twice");
    assert_eq!(
        got[0].header("x-acoupi-message-id"),
        got[1].header("x-acoupi-message-id")
    );
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.sent, stats.possible_duplicates), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_both_messengers_a_message_waits_until_each_has_it() {
    let mut broker = Broker::start();
    broker.kill();
    let server = HttpServer::start(Reply::Status(200, "ok"));
    let http_m = HttpMessenger::new(&http(server.url())).unwrap();
    let mqtt_cfg = MqttConfig {
        host: "127.0.0.1".into(),
        port: broker.port,
        username: None,
        password: None,
        topic: "acoupi".into(),
        per_kind_subtopics: false,
        timeout: 1,
        use_tls: false,
        ca_file: None,
        keep_alive: 30,
    };
    let mqtt_m = MqttMessenger::start(&mqtt_cfg, "dev-both").unwrap();
    let messengers = [&http_m as &dyn Messenger, &mqtt_m as &dyn Messenger];
    let (_dir, outbox) = scratch_outbox();
    outbox.enqueue("detection", "{}", t0()).unwrap();
    let first = deliver_at(&outbox, &messengers, t0()).await;
    assert_eq!(
        first.deferred, 1,
        "MQTT is down, so the message stays queued"
    );
    broker.restart();
    for _ in 0..1000 {
        if mqtt_m.is_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = deliver_at(&outbox, &messengers, after(3600)).await;
    assert_eq!(second.sent, 1);
    assert_eq!(
        server.received().len(),
        1,
        "HTTP already had it: not posted again"
    );
}

#[test]
fn http_check_reports_each_failure_distinctly() {
    let ok = HttpServer::start(Reply::Status(200, ""));
    check_http(&http(ok.url()), Duration::from_secs(2)).unwrap();
    assert_eq!(ok.received()[0].method, "OPTIONS");

    let auth = HttpServer::start(Reply::Status(401, "who are you"));
    let err = check_http(&http(auth.url()), Duration::from_secs(2)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("authentication rejected by {}: HTTP 401", auth.url())
    );

    let missing = HttpServer::start(Reply::Status(404, ""));
    let err = check_http(&http(missing.url()), Duration::from_secs(2)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{} rejected by the server: HTTP 404", missing.url())
    );

    let port = messaging_support::free_port();
    let err = check_http(
        &http(format!("http://127.0.0.1:{port}/x")),
        Duration::from_secs(2),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("connection refused by 127.0.0.1:{port}: check that the server runs and the port is right")
    );

    let err = check_http(
        &http("http://no-such-host.invalid/x".into()),
        Duration::from_secs(2),
    )
    .unwrap_err();
    assert!(matches!(err, CheckError::NameResolution { .. }), "{err:?}");

    let silent = HttpServer::start(Reply::Silence);
    let err = check_http(&http(silent.url()), Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, CheckError::Timeout { .. }), "{err:?}");
}

/// The HTTPS server of the tests below: its certificate (for 127.0.0.1 and localhost) is
/// signed by `pki.ca()`, a CA no system store holds.
fn https_server(pki: &Pki) -> HttpServer {
    HttpServer::start_tls(
        Reply::Status(200, "ok"),
        &pki.server_cert(),
        &pki.server_key(),
    )
}

/// The `response.content` rows of message `id` (what each attempt said), oldest first.
fn responses(outbox: &Outbox, id: uuid::Uuid) -> Vec<(i64, String)> {
    let conn = rusqlite::Connection::open(outbox.path()).unwrap();
    let mut stmt = conn
        .prepare("SELECT status, content FROM response WHERE message_id = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([id.as_bytes().as_slice()], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_posted_over_https_to_a_server_signed_by_the_ca_file() {
    let pki = Pki::new();
    let server = https_server(&pki);
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let mut cfg = http(server.url());
    cfg.ca_file = Some(pki.ca());
    cfg.bearer_token = Some(Secret::new("tok-tls"));
    let messenger = HttpMessenger::new(&cfg).unwrap();
    let (_dir, outbox) = scratch_outbox();
    let bodies = [
        "{\"status\":\"OK\",\"n\":1}",
        "{\"species\":\"Erithacus rubecula\",\"score\":0.93}",
    ];
    let ids: Vec<_> = bodies
        .iter()
        .map(|b| outbox.enqueue("detection", b, t0()).unwrap())
        .collect();

    let report = deliver_at(&outbox, &[&messenger], t0()).await;
    assert_eq!((report.sent, report.deferred, report.failed), (2, 0, 0));
    let got = server.received();
    assert_eq!(got.len(), 2);
    for (body, id) in bodies.iter().zip(&ids) {
        // Equal creation times: the outbox orders them by id, so match by id.
        let request = got
            .iter()
            .find(|r| r.header("x-acoupi-message-id") == Some(id.to_string().as_str()))
            .unwrap_or_else(|| panic!("message {id} never arrived: {got:?}"));
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/messages")
        );
        assert_eq!(request.body, body.as_bytes());
        assert_eq!(request.header("authorization"), Some("Bearer tok-tls"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(responses(&outbox, *id), [(0, "ok".to_owned())]);
    }
    let stats = outbox.stats().unwrap();
    assert_eq!(
        (stats.queued, stats.sent, stats.failed_permanent),
        (0, 2, 0)
    );

    check_http(&cfg, Duration::from_secs(2)).unwrap();
    assert_eq!(server.received()[2].method, "OPTIONS");
    // The certificate names localhost too, and the name is verified like the address.
    let mut by_name = cfg.clone();
    by_name.base_url = server.url_at("localhost");
    check_http(&by_name, Duration::from_secs(2)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_without_ca_file_defers_the_message_naming_the_system_store() {
    let pki = Pki::new();
    let server = https_server(&pki);
    let messenger = HttpMessenger::new(&http(server.url())).unwrap();
    let messengers = [&messenger as &dyn Messenger];
    let (_dir, outbox) = scratch_outbox();
    let id = outbox.enqueue("detection", "{}", t0()).unwrap();

    let report = deliver_at(&outbox, &messengers, t0()).await;
    assert_eq!((report.sent, report.deferred, report.failed), (0, 1, 0));
    assert!(server.received().is_empty(), "refused before any request");
    assert_eq!(
        responses(&outbox, id),
        [(
            2,
            format!(
                "POST {}: tls handshake with 127.0.0.1:{} failed: server certificate not accepted (UnknownIssuer): no CA in the system store signed it, set ca_file to the CA that did",
                server.url(),
                server.port
            )
        )]
    );
    let state = outbox.state(id).unwrap().unwrap();
    assert_eq!(
        (state.attempts, state.finished_on, state.permanent_failure),
        (1, None, None)
    );
    assert_eq!(outbox.stats().unwrap().queued, 1);

    let err = check_http(&http(server.url()), Duration::from_secs(2)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "tls handshake with 127.0.0.1:{} failed: server certificate not accepted (UnknownIssuer): no CA in the system store signed it, set ca_file to the CA that did",
            server.port
        )
    );

    // Given the CA, the same message goes out on its next attempt.
    let mut cfg = http(server.url());
    cfg.ca_file = Some(pki.ca());
    let fixed = HttpMessenger::new(&cfg).unwrap();
    let later = deliver_at(&outbox, &[&fixed], after(3600)).await;
    assert_eq!(later.sent, 1);
    assert_eq!(server.received()[0].body, b"{}");
}
