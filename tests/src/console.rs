//! Reading the coordinator's web console in tests: plain HTTP/1.1 on
//! loopback, or over TLS as a browser with (or without) a client certificate
//! would.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use cohort_crypto::tls::{ExpectedServer, PinnedServerVerifier, TlsFiles, load_certificates};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Page {
    /// Its status code.
    pub status: u16,
    /// Its headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: String,
}

impl Page {
    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` over `stream` with HTTP/1.1, the connection closed after.
pub async fn get_over(stream: impl AsyncRead + AsyncWrite + Unpin, path: &str) -> io::Result<Page> {
    get_for_host(stream, "localhost", path).await
}

/// `GET path` over `stream` as a request for `host`.
pub async fn get_for_host(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    host: &str,
    path: &str,
) -> io::Result<Page> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no status line in {head:?}")))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Page {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// `GET path` over plain HTTP at `address` (the console on loopback, the
/// health and metrics endpoint).
pub async fn get(address: SocketAddr, path: &str) -> Page {
    let stream = TcpStream::connect(address)
        .await
        .expect("the server connects");
    get_over(stream, path).await.expect("the server answers")
}

/// A browser's TLS configuration for the console: trusting the federation's
/// CA and expecting the coordinator's certificate, presenting `client`'s
/// certificate (none for `None`).
pub fn browser_tls(
    ca_certificate: &std::path::Path,
    client: Option<&TlsFiles>,
) -> Arc<ClientConfig> {
    let mut config = match client {
        Some(files) => {
            let grpc = cohort_crypto::tls::client_config(files, ExpectedServer::coordinator())
                .expect("client TLS");
            (*grpc).clone()
        }
        None => {
            let mut roots = RootCertStore::empty();
            for certificate in load_certificates(ca_certificate).expect("CA") {
                roots.add(certificate).expect("CA is a trust anchor");
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .expect("verifier");
            let verifier = PinnedServerVerifier::new(webpki, ExpectedServer::coordinator());
            ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13])
                .expect("TLS 1.3")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// `GET path` from the console at `address` over TLS with `tls`: the page, or
/// the I/O error the handshake or the read ended with.
pub async fn get_tls(address: SocketAddr, tls: Arc<ClientConfig>, path: &str) -> io::Result<Page> {
    let tcp = TcpStream::connect(address).await?;
    let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
    let stream = TlsConnector::from(tls).connect(name, tcp).await?;
    get_over(stream, path).await
}
