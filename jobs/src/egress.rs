//! The egress policy: every request Waflow makes to a URL a workspace gave (a flow's
//! http_request step and its dry run, outgoing webhooks, an assistant's model API, a sender's
//! Cloud API base URL) goes through the one client here, which refuses addresses inside the
//! server's own networks: loopback, private (RFC 1918), carrier-grade NAT, link-local (where
//! cloud metadata services answer), unique-local, multicast, unspecified, broadcast and the
//! reserved and documentation ranges, in every spelling (IPv4-mapped and NAT64 IPv6, decimal and
//! octal IPv4, which the URL parser reads as the address they name).
//!
//! It is checked three times: on the URL when it is saved (a literal address), on the URL
//! before each request, and at connect time, on every address a name resolves to and on every
//! redirect. `WAFLOW_ALLOW_PRIVATE_NETWORKS=true` turns it off, for self-hosted setups whose
//! services live on a private network, and for tests.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use reqwest::{
    Method, RequestBuilder, Url,
    dns::{Addrs, Name, Resolve, Resolving},
    redirect,
};

/// Redirects followed before a request gives up.
const MAX_REDIRECTS: usize = 5;

/// Why a request was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The client for user-supplied URLs and its policy. Cheap to clone; the policy is shared by
/// every clone.
#[derive(Clone, Debug)]
pub struct Egress {
    policy: Arc<Policy>,
    client: reqwest::Client,
}

#[derive(Debug, Default)]
struct Policy {
    allow_private: AtomicBool,
    /// Inside addresses let through one by one (a test's stand-in), written as `ip:port`.
    allowed: std::sync::RwLock<std::collections::HashSet<SocketAddr>>,
}

impl Policy {
    fn refuses(&self, url: &Url) -> Option<Refused> {
        if self.allow_private.load(Ordering::Relaxed) {
            return None;
        }
        let refused = literal_refused(url)?;
        let allowed = self.allowed.read().expect("egress policy lock");
        let address = match url.host()? {
            url::Host::Ipv4(v4) => IpAddr::V4(v4),
            url::Host::Ipv6(v6) => IpAddr::V6(v6),
            url::Host::Domain(_) => return Some(refused),
        };
        let port = url.port_or_known_default()?;
        (!allowed.contains(&SocketAddr::new(address, port))).then_some(refused)
    }
}

impl Default for Egress {
    fn default() -> Self {
        Self::new()
    }
}

impl Egress {
    /// Private networks refused until `allow_private_networks(true)`.
    pub fn new() -> Self {
        let policy = Arc::new(Policy::default());
        let resolver = PublicOnly {
            policy: policy.clone(),
        };
        let redirects = {
            let policy = policy.clone();
            redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt.error(Refused(format!("more than {MAX_REDIRECTS} redirects")));
                }
                match policy.refuses(attempt.url()) {
                    Some(refused) => attempt.error(refused),
                    None => attempt.follow(),
                }
            })
        };
        let client = reqwest::Client::builder()
            .user_agent(concat!("waflow/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .dns_resolver(Arc::new(resolver))
            .redirect(redirects)
            // A proxy would connect for us, past the checks.
            .no_proxy()
            .build()
            .expect("the HTTP client builds with static settings");
        Self { policy, client }
    }

    /// Lets requests reach private networks (`WAFLOW_ALLOW_PRIVATE_NETWORKS`), or not.
    pub fn allow_private_networks(&self, allow: bool) {
        self.policy.allow_private.store(allow, Ordering::Relaxed);
    }

    /// Lets requests reach this one inside address, given as an address in URLs (a test's
    /// stand-in for a public server).
    pub fn allow_address(&self, address: SocketAddr) {
        self.policy
            .allowed
            .write()
            .expect("egress policy lock")
            .insert(address);
    }

    /// Whether `url` may be saved: an http(s) URL whose host, if it is an address, is public.
    /// A name is checked when a request is made, on what it resolves to then.
    pub fn check_url(&self, url: &str) -> Result<Url, Refused> {
        let parsed = Url::parse(url).map_err(|e| Refused(format!("is not a valid URL ({e})")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(Refused("must be an http:// or https:// URL".into()));
        }
        match self.policy.refuses(&parsed) {
            Some(refused) => Err(refused),
            None => Ok(parsed),
        }
    }

    /// A request to `url`, if the policy lets it go there.
    pub fn request(&self, method: Method, url: &str) -> Result<RequestBuilder, Refused> {
        let url = self
            .check_url(url)
            .map_err(|Refused(why)| Refused(format!("{url} {why}")))?;
        Ok(self.client.request(method, url))
    }

    pub fn get(&self, url: &str) -> Result<RequestBuilder, Refused> {
        self.request(Method::GET, url)
    }

    pub fn post(&self, url: &str) -> Result<RequestBuilder, Refused> {
        self.request(Method::POST, url)
    }
}

/// Whether two URLs reach the same server (scheme, host and port): a secret entered for one
/// may be sent to the other. A URL that cannot be read matches nothing.
pub fn same_origin(a: Option<&str>, b: Option<&str>) -> bool {
    let origin = |url: Option<&str>| url.and_then(|u| Url::parse(u).ok()).map(|u| u.origin());
    match (origin(a), origin(b)) {
        (Some(a), Some(b)) => a.is_tuple() && a == b,
        _ => false,
    }
}

/// What a workspace is told when it points a stored secret at another server.
pub fn secret_stays_home(secret: &str, url_field: &str) -> String {
    format!(
        "give the {secret} again with a new {url_field}: a stored secret is only sent to the \
         server it was entered for"
    )
}

/// The body of `response`, at most `cap` bytes of it: read as it streams in, so an answer of a
/// gigabyte costs `cap`, not a gigabyte. The flag tells whether more was left unread.
pub async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// What went wrong with a request, in words a user can act on: the host, then the failure
/// (`api.example.com: the name does not resolve (DNS)`, `127.0.0.1: connection refused`,
/// `…: timed out`, `…: TLS failed: invalid peer certificate: UnknownIssuer`, an address the
/// policy refuses). Never the URL's path or query, which can carry ids and tokens.
pub fn describe(error: &reqwest::Error) -> String {
    let what = failure(error);
    match error.url().and_then(Url::host_str) {
        Some(host) => format!("{host}: {what}"),
        None => what,
    }
}

fn failure(error: &reqwest::Error) -> String {
    let mut causes: Vec<&(dyn std::error::Error + 'static)> = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        causes.push(cause);
        source = cause.source();
    }
    if let Some(refused) = causes.iter().find_map(|c| c.downcast_ref::<Refused>()) {
        return refused.0.clone();
    }
    if error.is_timeout() {
        return "timed out".into();
    }
    let io_kind = causes
        .iter()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    let deepest = causes
        .last()
        .map(|c| c.to_string())
        .unwrap_or_else(|| error.to_string());
    let texts: Vec<String> = causes
        .iter()
        .map(|c| c.to_string().to_lowercase())
        .collect();
    let says = |word: &str| texts.iter().any(|t| t.contains(word));
    match io_kind {
        Some(std::io::ErrorKind::ConnectionRefused) => return "connection refused".into(),
        Some(std::io::ErrorKind::ConnectionReset) => return "connection reset".into(),
        Some(std::io::ErrorKind::TimedOut) => return "timed out".into(),
        _ => {}
    }
    if says("dns error") || says("failed to lookup") {
        format!("the name does not resolve (DNS): {deepest}")
    } else if says("certificate") || says("tls") || says("handshake") || says("corrupt message") {
        format!("TLS failed: {deepest}")
    } else if error.is_connect() {
        format!("cannot connect: {deepest}")
    } else if error.is_body() || error.is_decode() {
        format!("the answer broke off: {deepest}")
    } else {
        deepest
    }
}

/// The refusal of a URL whose host is an inside address, or a name for one (localhost).
fn literal_refused(url: &Url) -> Option<Refused> {
    let address = match url.host()? {
        url::Host::Ipv4(v4) => IpAddr::V4(v4),
        url::Host::Ipv6(v6) => IpAddr::V6(v6),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                return Some(private_refusal(&name));
            }
            return None;
        }
    };
    (!is_public(address)).then(|| private_refusal(&address.to_string()))
}

fn private_refusal(host: &str) -> Refused {
    Refused(format!(
        "points at {host}, inside a private, loopback, link-local or reserved network, which \
         Waflow does not reach (WAFLOW_ALLOW_PRIVATE_NETWORKS)"
    ))
}

/// Whether `address` is on the public internet.
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(a: Ipv4Addr) -> bool {
    let [first, second, third, _] = a.octets();
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_documentation()
        || first == 0 // "this network"
        || first >= 240 // reserved
        || (first == 100 && (64..128).contains(&second)) // carrier-grade NAT
        || (first == 192 && second == 0 && third == 0) // IETF protocol assignments
        || (first == 198 && (18..20).contains(&second))) // benchmarking
}

fn is_public_v6(a: Ipv6Addr) -> bool {
    // Addresses that carry an IPv4 address are as public as it is.
    if let Some(v4) = a.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = a.segments();
    let embedded = |high: u16, low: u16| Ipv4Addr::from(((high as u32) << 16) | low as u32);
    match segments {
        // NAT64 (64:ff9b::/96)
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => return is_public_v4(embedded(high, low)),
        // 6to4 (2002::/16)
        [0x2002, high, low, ..] => return is_public_v4(embedded(high, low)),
        // IPv4-compatible (::a.b.c.d), deprecated but still parsed
        [0, 0, 0, 0, 0, 0, high, low] if a.segments()[6] != 0 => {
            return is_public_v4(embedded(high, low));
        }
        _ => {}
    }
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || a.is_unique_local()
        || a.is_unicast_link_local()
        || (segments[0] & 0xffc0) == 0xfec0 // site-local, deprecated
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || (segments[0] == 0x0100 && segments[1..4] == [0, 0, 0])) // discard
}

/// Resolves names as the system does, and keeps only public addresses.
struct PublicOnly {
    policy: Arc<Policy>,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.policy.allow_private.load(Ordering::Relaxed);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if kept.is_empty() && !found.is_empty() {
                let refused = private_refusal(&format!("{host} ({})", found[0].ip()));
                return Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The failure of one request through an egress that lets inside addresses through.
    async fn failure_of(url: &str) -> String {
        let egress = Egress::new();
        egress.allow_private_networks(true);
        let error = egress
            .get(url)
            .unwrap()
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap_err();
        describe(&error)
    }

    #[tokio::test]
    async fn a_failed_request_says_which_host_and_what_failed() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        assert_eq!(
            failure_of(&format!("http://127.0.0.1:{port}/v1/secret-path?key=k")).await,
            "127.0.0.1: connection refused"
        );
        let dns = failure_of("http://no-such-host.invalid/x").await;
        assert!(
            dns.starts_with("no-such-host.invalid: the name does not resolve (DNS)"),
            "{dns}"
        );
        // A plain TCP server that answers TLS's hello with HTTP text.
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = plain.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut socket, _)) = plain.accept().await {
                let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let tls = failure_of(&format!("https://127.0.0.1:{port}/")).await;
        assert!(tls.starts_with("127.0.0.1: TLS failed"), "{tls}");
        assert!(!tls.contains("secret-path"));
    }

    #[test]
    fn every_spelling_of_an_inside_address_is_refused() {
        let egress = Egress::new();
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://10.0.0.1/",
            "http://172.16.5.4/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://[::1]/",
            "http://0.0.0.0/",
            "http://[::]/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://127.0.0.1:8080/metrics",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::1]/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://240.0.0.1/",
            "http://192.0.2.10/",
        ] {
            assert!(egress.check_url(url).is_err(), "{url} was allowed");
            assert!(egress.get(url).is_err(), "{url} was requested");
        }
    }

    #[test]
    fn public_addresses_and_names_pass() {
        let egress = Egress::new();
        for url in [
            "https://graph.facebook.com/v21.0/",
            "https://api.openai.com/v1",
            "http://93.184.215.14/",
            "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/",
            "http://[::ffff:93.184.215.14]/",
        ] {
            assert!(egress.check_url(url).is_ok(), "{url} was refused");
        }
        for bad in ["ftp://example.com/", "example.com", "http://"] {
            assert!(egress.check_url(bad).is_err(), "{bad} was allowed");
        }
    }

    #[test]
    fn the_setting_lets_private_networks_through() {
        let egress = Egress::new();
        egress.allow_private_networks(true);
        assert!(egress.check_url("http://127.0.0.1:8080/").is_ok());
        assert!(egress.clone().check_url("http://10.0.0.1/").is_ok());
        egress.allow_private_networks(false);
        assert!(egress.check_url("http://10.0.0.1/").is_err());
    }
}
