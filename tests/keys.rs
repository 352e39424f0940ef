//! Key fetching against local servers: HKP by keyid, a PPA's key through Launchpad's API, the
//! fingerprint check, 404 and retries on 5xx (issue 4, item 3).

mod support;

use cloudcfg::apply::keys::{KeyError, KeyFetcher};
use support::http::{self, Response};
use support::https::HttpsServer;
use support::proxy::TinyProxy;

const KEY: &str = include_str!("compat/keys/throwaway.asc");
const FPR: &str = "897FB1D86845F884F32374A8B54F83BA163D7715";

fn keyserver() -> http::Server {
    http::serve(http::or_not_found(http::hkp(vec![(
        FPR.to_owned(),
        KEY.to_owned(),
    )])))
}

#[test]
fn fetches_by_short_long_and_full_ids_and_checks_the_fingerprint() {
    let server = keyserver();
    let fetcher = KeyFetcher::new("http://127.0.0.1:1", "unused", None);
    for keyid in [
        "163D7715",
        "B54F83BA163D7715",
        FPR,
        "897F B1D8 6845 F884 F323  74A8 B54F 83BA 163D 7715",
    ] {
        let key = fetcher.by_keyid(keyid, &server.url()).unwrap();
        let fingerprints = cloudcfg::values::armored_key_fingerprints(&key).unwrap();
        assert_eq!(fingerprints, vec![FPR.to_owned()], "{keyid}");
    }
    let request = &server.requests()[0];
    assert_eq!(request.path, "/pks/lookup");
    assert_eq!(request.query_param("op"), Some("get"));
    assert_eq!(request.query_param("options"), Some("mr"));
    assert_eq!(request.query_param("search"), Some("0x163D7715"));
}

#[test]
fn a_key_with_another_fingerprint_is_refused() {
    // The server answers every lookup with the throwaway key, whatever was asked.
    let server = http::serve(|_: &http::Request| Response::ok(KEY));
    let fetcher = KeyFetcher::new("http://127.0.0.1:1", "unused", None);
    let err = fetcher
        .by_keyid("0123456789ABCDEF0123456789ABCDEF01234567", &server.url())
        .unwrap_err();
    assert!(matches!(err, KeyError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains(FPR), "{err}");
}

#[test]
fn an_unknown_key_is_a_clear_error_without_retries() {
    let server = keyserver();
    let fetcher = KeyFetcher::new("http://127.0.0.1:1", "unused", None);
    let err = fetcher
        .by_keyid("0123456789ABCDEF", &server.url())
        .unwrap_err();
    assert!(matches!(err, KeyError::NotFound { .. }), "{err}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn server_errors_are_retried() {
    let server = http::serve(http::sequence(vec![
        Response::status(503),
        Response::status(502),
        Response::ok(KEY),
    ]));
    let fetcher = KeyFetcher::new("http://127.0.0.1:1", "unused", None);
    fetcher.by_keyid(FPR, &server.url()).unwrap();
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn a_ppa_key_is_the_one_launchpad_names() {
    let keys = keyserver();
    let launchpad = http::serve(|r: &http::Request| {
        if r.path == "/~example-team/+archive/ubuntu/example-ppa" {
            Response::ok(format!(
                r#"{{"signing_key_fingerprint": "{FPR}", "name": "example-ppa"}}"#
            ))
        } else {
            Response::not_found()
        }
    });
    let fetcher = KeyFetcher::new(&launchpad.url(), &keys.url(), None);
    let key = fetcher.for_ppa("example-team/example-ppa").unwrap();
    assert!(key.contains("BEGIN PGP PUBLIC KEY BLOCK"));
    assert_eq!(
        keys.requests()[0].query_param("search"),
        Some(&*format!("0x{FPR}"))
    );
    let err = fetcher.for_ppa("nobody/nothing").unwrap_err();
    assert!(matches!(err, KeyError::Launchpad { .. }), "{err}");
}

/// The throwaway key as `gpg --export` writes it (binary).
fn binary_key() -> Vec<u8> {
    use pgp::composed::{Deserializable, SignedPublicKey};
    use pgp::ser::Serialize;
    let (key, _) = SignedPublicKey::from_string(KEY).unwrap();
    key.to_bytes().unwrap()
}

#[test]
fn a_key_url_is_fetched_over_https_trusting_the_targets_ca_armored_or_binary() {
    let binary = binary_key();
    let server = HttpsServer::start(&[("key.asc", KEY.as_bytes()), ("key.gpg", &binary)]);
    let fetcher = KeyFetcher::new("http://127.0.0.1:1", "unused", Some(&server.ca_pem));
    for name in ["key.asc", "key.gpg"] {
        let key = fetcher.by_url(&server.url(name), FPR).unwrap();
        let fingerprints = cloudcfg::values::armored_key_fingerprints(&key).unwrap();
        assert_eq!(fingerprints, vec![FPR.to_owned()], "{name}");
    }
    let err = fetcher
        .by_url(
            &server.url("key.gpg"),
            "0123456789ABCDEF0123456789ABCDEF01234567",
        )
        .unwrap_err();
    assert!(matches!(err, KeyError::Mismatch { .. }), "{err}");
    let err = fetcher.by_url(&server.url("missing.asc"), FPR).unwrap_err();
    assert!(matches!(err, KeyError::UrlNotFound { .. }), "{err}");
}

#[test]
fn a_key_url_whose_certificate_the_target_does_not_trust_is_refused() {
    let server = HttpsServer::start(&[("key.asc", KEY.as_bytes())]);
    let fetcher = KeyFetcher::new("http://127.0.0.1:1", "unused", None);
    let err = fetcher.by_url(&server.url("key.asc"), FPR).unwrap_err();
    assert!(matches!(err, KeyError::Http { .. }), "{err}");
}

#[test]
fn key_fetches_go_through_apts_proxy_and_none_bypasses_it() {
    if !support::root::have_tools(
        "keys::key_fetches_go_through_apts_proxy_and_none_bypasses_it",
        &["tinyproxy", "openssl", "python3"],
    ) {
        return;
    }
    let proxy = TinyProxy::start();
    let keyserver = keyserver();
    let https = HttpsServer::start(&[("key.asc", KEY.as_bytes())]);
    let fetcher = KeyFetcher::new("http://127.0.0.1:1", "unused", Some(&https.ca_pem))
        .through(Some(&proxy.url()), Some(&proxy.url()));
    for keyid in ["163D7715", FPR] {
        fetcher.by_keyid(keyid, &keyserver.url()).unwrap();
    }
    fetcher.by_url(&https.url("key.asc"), FPR).unwrap();
    // The client tunnels every request (CONNECT, also for http://): each one the servers
    // answered is a tunnel the proxy logged to that server, so none went around it.
    let logged = proxy.requests();
    let tunnels_to = |port: u16| {
        logged
            .iter()
            .filter(|r| r.starts_with(&format!("CONNECT 127.0.0.1:{port} ")))
            .count()
    };
    let keyserver_port: u16 = keyserver.url().rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(keyserver.requests().len(), 2);
    assert_eq!(tunnels_to(keyserver_port), 2, "{logged:?}");
    assert_eq!(tunnels_to(https.port), 1, "{logged:?}");
    assert_eq!(logged.len(), 3, "nothing else: {logged:?}");
}

#[test]
fn a_proxy_that_cannot_be_reached_fails_the_fetch_with_its_name_and_no_password() {
    let keyserver = keyserver();
    let fetcher = KeyFetcher::new("http://127.0.0.1:1", "unused", None)
        .through(Some("http://fetcher:s3cret@127.0.0.1:1/"), None);
    let err = fetcher.by_keyid(FPR, &keyserver.url()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, KeyError::Http { .. }), "{text}");
    assert!(
        text.contains("through proxy http://<credentials>@127.0.0.1:1/"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
    assert!(
        keyserver.requests().is_empty(),
        "nothing went around the proxy"
    );
}
