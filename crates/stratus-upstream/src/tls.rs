//! TLS for stratus's outgoing https requests: upstream endpoints
//! (`--upstream-endpoint https://...`) and SNS `https` subscriptions.
//!
//! Protocols: TLS 1.2 and TLS 1.3 (rustls with the `ring` provider).
//! Certificates are verified (chain and host name, IP address names
//! included) against the system roots (`rustls-native-certs`: on Linux the
//! distribution's bundle, e.g. `/etc/ssl/certs/ca-certificates.crt`, or the
//! file and directory named by `SSL_CERT_FILE` / `SSL_CERT_DIR`) plus the
//! certificate authorities of an extra PEM bundle: `--upstream-ca-bundle
//! PATH`, else the `AWS_CA_BUNDLE` environment variable the AWS SDKs read
//! ("Configuration and credential file settings", `ca_bundle`). The AWS
//! SDKs use that bundle instead of their default roots; stratus adds it to
//! the system roots, so endpoints with public certificates keep working.

use std::error::Error as StdError;
use std::path::Path;
use std::sync::Arc;

pub use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Reads the certificates of a PEM bundle (`-----BEGIN CERTIFICATE-----`
/// sections; other sections are skipped).
///
/// Errors: the file cannot be read, a section is malformed, or it holds no
/// certificate; the message names the file.
pub fn load_ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read the CA bundle {shown}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the CA bundle {shown} is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "the CA bundle {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}

/// The rustls client configuration for outgoing https: TLS 1.2 / 1.3, the
/// system roots plus the certificates of `ca_bundle` ([`load_ca_bundle`]).
/// System roots that cannot be read or parsed are skipped (and logged
/// nowhere: a handshake with an unknown issuer then reports
/// `UnknownIssuer`).
///
/// Errors: the bundle cannot be loaded, or one of its certificates is not a
/// usable trust anchor; the message names the file.
pub fn client_config(ca_bundle: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_bundle {
        for (i, cert) in load_ca_bundle(path)?.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                format!(
                    "certificate {} of the CA bundle {} cannot be trusted: {e}",
                    i + 1,
                    path.display()
                )
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Opens TLS over `tcp` to `host` (a DNS name or an IP address, IPv6 with
/// or without brackets), verifying the server's certificate for that name.
///
/// Errors: the name is not a valid server name, or the handshake fails
/// (e.g. `invalid peer certificate: UnknownIssuer`, a certificate not valid
/// for the name); the message is [`describe`]'s.
pub async fn connect(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(bare.to_string())
        .map_err(|e| format!("'{host}' is not a valid TLS server name: {e}"))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| describe(&e))
}

/// `e` and its sources, `: `-separated (hyper's errors say only "client
/// error (Connect)" themselves; the cause is in the chain), with advice
/// when the failure is an untrusted certificate.
pub fn describe(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        src = s.source();
    }
    let mut out = parts.join(": ");
    if out.contains("UnknownIssuer") {
        out.push_str(
            " (the server's certificate is not trusted: to trust a private certificate authority, start stratus with --upstream-ca-bundle PATH or set AWS_CA_BUNDLE to a PEM file holding it)",
        );
    } else if out.contains("CaUsedAsEndEntity") {
        out.push_str(
            " (the server's certificate is marked as a certificate authority, basicConstraints CA:TRUE: a self-signed server certificate must have CA:FALSE, or be issued by an authority in the CA bundle)",
        );
    } else if out.contains("not valid for name") || out.contains("NotValidForName") {
        out.push_str(
            " (the endpoint URL must name a host or IP address the server's certificate holds)",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_bundle_is_reported_with_its_path() {
        let e = load_ca_bundle(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let dir = std::env::temp_dir().join(format!("stratus-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = load_ca_bundle(&empty).unwrap_err();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        assert!(client_config(Some(&empty)).is_err());
        let bad = dir.join("bad.pem");
        std::fs::write(
            &bad,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(load_ca_bundle(&bad).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_config_without_a_bundle_uses_the_system_roots() {
        assert!(client_config(None).is_ok());
    }

    #[test]
    fn describe_walks_the_source_chain() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other(
            "invalid peer certificate: UnknownIssuer",
        ));
        let d = describe(&e);
        assert!(
            d.starts_with("client error (Connect): invalid peer certificate: UnknownIssuer"),
            "{d}"
        );
        assert!(d.contains("--upstream-ca-bundle"), "{d}");
        let e = Outer(std::io::Error::other(
            "invalid peer certificate: certificate not valid for name \"localhost\"",
        ));
        let d = describe(&e);
        assert!(d.contains("must name a host"), "{d}");
        assert!(!d.contains("--upstream-ca-bundle"), "{d}");
    }
}
