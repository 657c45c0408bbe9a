//! TLS for https endpoints: which certificates both drivers trust (the system's roots plus
//! `driver_config.ca_file` / `ca_pem`, or nothing checked with `insecure: true`), the SDK's
//! HTTP client when the connection file changes that, and how a refused handshake is told
//! apart from other connection failures so preparing can name the cause and the fix.

use super::{FailureKind, OpError};
use crate::s3_config::DriverConfig;
use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpConnector, HttpConnectorFuture, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::body::SdkBody;
/// TCP connections, resolving names through `driver_config.resolve` first.
pub(crate) type TcpConnector =
    hyper_util::client::legacy::connect::HttpConnector<super::resolve::Resolver>;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};
use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Why a TLS handshake failed, as far as the operator's fix goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsCause {
    /// The certificate chains to no CA this client trusts (a private CA not given).
    UnknownCa,
    /// The certificate does not name the endpoint's host.
    NameMismatch,
    /// The certificate has expired, or is not valid yet.
    Expired,
    /// Anything else: the port does not speak TLS, an alert, no common protocol version.
    Handshake,
}

impl fmt::Display for TlsCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsCause::UnknownCa => "unknown CA",
            TlsCause::NameMismatch => "name mismatch",
            TlsCause::Expired => "expired certificate",
            TlsCause::Handshake => "handshake failed",
        })
    }
}

/// Why the TLS client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Whether the connection file changes what TLS trusts (then the SDK gets our client).
pub(crate) fn customised(tuning: &DriverConfig) -> bool {
    tuning.insecure || !tuning.trusted.0.is_empty() || !tuning.resolved.is_empty()
}

/// The TLS client configuration both drivers use.
pub(crate) fn client_config(tuning: &DriverConfig) -> Result<rustls::ClientConfig, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    if tuning.insecure {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for cert in &tuning.trusted.0 {
        roots.add(cert.clone())?;
    }
    if roots.is_empty() {
        // A plain-http endpoint needs no CA, so a machine without the system's CA store (a
        // minimal container) can still run; an https one then fails in preparing with
        // "unknown CA", whose message names the fix.
        let why = native
            .errors
            .first()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "the system store is empty".into());
        log::warn!(
            "no trusted CA certificates ({why}): https endpoints will fail verification; \
             install the system's CA certificates (ca-certificates) or set driver_config.ca_file"
        );
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// The hyper connector (http and https) both drivers' own clients use.
pub(crate) fn connector(
    tuning: &DriverConfig,
) -> Result<hyper_rustls::HttpsConnector<TcpConnector>, TlsSetupError> {
    let mut http = TcpConnector::new_with_resolver(super::resolve::Resolver::new(&tuning.resolved));
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(tuning.connect_timeout()));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config(tuning)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// Accepts any certificate (`insecure: true`), but still checks the handshake's signatures,
/// so the connection is at least encrypted to whoever answered.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `error` and each error behind it. After an `io::Error` the next one is its payload
/// (`get_ref`): `io::Error::source` skips the payload, where TLS errors travel.
fn chain<'a>(error: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |&e| match e.downcast_ref::<std::io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn Error + 'static)),
        None => e.source(),
    })
}

/// The cause of a TLS failure somewhere in `error`'s chain, if it is one.
pub(crate) fn cause(error: &(dyn Error + 'static)) -> Option<TlsCause> {
    let tls = chain(error).find_map(|e| e.downcast_ref::<rustls::Error>())?;
    Some(match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => TlsCause::UnknownCa,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsCause::NameMismatch
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsCause::Expired,
            _ => TlsCause::Handshake,
        },
        _ => TlsCause::Handshake,
    })
}

/// `error` as a TLS failure, when it is one; `text` is its full description.
pub(crate) fn failure(error: &(dyn Error + 'static), text: &str) -> Option<OpError> {
    cause(error).map(|c| OpError::new(FailureKind::Tls(c), text))
}

/// The SDK's HTTP client when the connection file changes what TLS trusts: hyper with our
/// TLS configuration, one pool shared by every request.
pub(crate) fn sdk_http_client(tuning: &DriverConfig) -> Result<SharedHttpClient, TlsSetupError> {
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector(tuning)?);
    let shared = SharedHttpConnector::new(SdkConnector { client });
    Ok(http_client_fn(move |_, _| shared.clone()))
}

/// Sends the SDK's requests through a hyper client built with [`connector`].
#[derive(Clone)]
struct SdkConnector {
    client: Client<hyper_rustls::HttpsConnector<TcpConnector>, SdkBody>,
}

impl fmt::Debug for SdkConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SdkConnector")
    }
}

impl HttpConnector for SdkConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let fut = self.client.request(request);
        HttpConnectorFuture::new(async move {
            match fut.await {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
                Err(e) => {
                    let timed_out = chain(&e).any(|x| {
                        x.downcast_ref::<std::io::Error>()
                            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
                    });
                    Err(if timed_out {
                        ConnectorError::timeout(e.into())
                    } else if e.is_connect() && cause(&e).is_none() {
                        ConnectorError::io(e.into())
                    } else {
                        ConnectorError::other(e.into(), None)
                    })
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_found_behind_io_errors() {
        let wrapped = |c: CertificateError| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(c),
            )
        };
        assert_eq!(
            cause(&wrapped(CertificateError::UnknownIssuer)),
            Some(TlsCause::UnknownCa)
        );
        assert_eq!(
            cause(&wrapped(CertificateError::NotValidForName)),
            Some(TlsCause::NameMismatch)
        );
        assert_eq!(
            cause(&wrapped(CertificateError::Expired)),
            Some(TlsCause::Expired)
        );
        assert_eq!(
            cause(&wrapped(CertificateError::BadEncoding)),
            Some(TlsCause::Handshake)
        );
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(cause(&refused), None);
    }

    #[test]
    fn insecure_and_extra_cas_change_the_client() {
        let mut tuning = DriverConfig::default();
        assert!(!customised(&tuning));
        tuning.insecure = true;
        assert!(customised(&tuning));
        assert!(client_config(&tuning).is_ok());
    }
}
