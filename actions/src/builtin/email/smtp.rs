//! The SMTP side of `send_email`: the `--smtp-url` grammar, the pooled lettre transport built from
//! it, and how lettre's errors map onto retry-or-give-up.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncSmtpTransport, Tokio1Executor};

use crate::ActionError;

/// How long one SMTP command may take before the attempt is abandoned (and retried).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How the connection to the SMTP server is secured, chosen by the URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: STARTTLS when the server offers it, plain text otherwise (default port 587).
    StartTlsWhenOffered,
    /// `smtps://`: TLS from the first byte (default port 465).
    ImplicitTls,
    /// `smtp+plain://`: never TLS, for local sinks and relays on the same host (default port 25).
    Plain,
}

impl SmtpSecurity {
    fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::StartTlsWhenOffered => 587,
            SmtpSecurity::ImplicitTls => 465,
            SmtpSecurity::Plain => 25,
        }
    }
}

/// A parsed `--smtp-url`: `smtp://[user:pass@]host[:port]`, `smtps://…` or `smtp+plain://…`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub security: SmtpSecurity,
    pub host: String,
    pub port: u16,
    /// User name and password, percent-decoded.
    pub credentials: Option<(String, String)>,
}

// The password must never reach a log line through `{:?}`.
impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpUrl")
            .field("security", &self.security)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl SmtpUrl {
    /// Parses the operator's URL. Error messages never repeat the URL itself, which may hold a
    /// password.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text.trim()).map_err(|e| format!("not a URL ({e})"))?;
        let security = match url.scheme() {
            "smtp" => SmtpSecurity::StartTlsWhenOffered,
            "smtps" => SmtpSecurity::ImplicitTls,
            "smtp+plain" => SmtpSecurity::Plain,
            other => {
                return Err(format!(
                    "unsupported scheme `{other}`: use smtp:// (STARTTLS when offered), \
                     smtps:// (implicit TLS) or smtp+plain:// (no TLS)"
                ));
            }
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err("the URL has no host".to_owned()),
        };
        if !matches!(url.path(), "" | "/") {
            return Err("the URL must not have a path".to_owned());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(
                "the URL must not have a query or fragment: the scheme chooses TLS".to_owned(),
            );
        }
        let decode = |s: &str, what: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| format!("the {what} is not valid UTF-8 once percent-decoded"))
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            (user, Some(password)) => {
                Some((decode(user, "user name")?, decode(password, "password")?))
            }
            (_, None) => {
                return Err("the URL has a user name but no password (user:pass@host)".to_owned());
            }
        };
        Ok(SmtpUrl {
            security,
            port: url.port().unwrap_or(security.default_port()),
            host,
            credentials,
        })
    }

    /// A transport builder for this URL. TLS settings are prepared here, so a host name rustls
    /// cannot use, or a machine without CA certificates, fails at start-up rather than per email.
    pub fn transport_builder(&self) -> Result<AsyncSmtpTransportBuilder, String> {
        let tls_parameters = || {
            TlsParameters::new(self.host.clone()).map_err(|e| {
                format!(
                    "cannot set up TLS for `{}`: {e} (are the system CA certificates installed?)",
                    self.host
                )
            })
        };
        let tls = match self.security {
            SmtpSecurity::StartTlsWhenOffered => Tls::Opportunistic(tls_parameters()?),
            SmtpSecurity::ImplicitTls => Tls::Wrapper(tls_parameters()?),
            SmtpSecurity::Plain => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(COMMAND_TIMEOUT))
            .pool_config(PoolConfig::new());
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(builder)
    }
}

/// The pooled transport, built on first use: lettre's pool spawns its idle-connection reaper
/// onto the current Tokio runtime, which `builtin::registry` (a plain function, called during
/// start-up) may not be running inside. It is still built once and shared by every step.
pub(super) struct Mailer {
    builder: AsyncSmtpTransportBuilder,
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
}

impl Mailer {
    pub(super) fn new(builder: AsyncSmtpTransportBuilder) -> Self {
        Self {
            builder,
            transport: OnceLock::new(),
        }
    }

    pub(super) fn transport(&self) -> &AsyncSmtpTransport<Tokio1Executor> {
        self.transport.get_or_init(|| self.builder.clone().build())
    }
}

/// 4xx replies, refused or dropped connections, TLS trouble and timeouts are worth another
/// attempt; a 5xx reply, or a message the client itself cannot send (8-bit content to a server
/// without 8BITMIME), will fail the same way every time.
pub(super) fn classify(err: lettre::transport::smtp::Error) -> ActionError {
    if err.is_permanent() {
        ActionError::permanent(format!("the SMTP server refused the message: {err}"))
    } else if err.is_client() {
        ActionError::permanent(format!("the message cannot be sent: {err}"))
    } else if err.is_transient() {
        ActionError::retryable(format!("the SMTP server deferred the message: {err}"))
    } else if err.is_timeout() {
        ActionError::retryable(format!("the SMTP server did not answer in time: {err}"))
    } else {
        ActionError::retryable(format!("SMTP delivery failed: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_scheme_means_starttls_when_offered_with_credentials() {
        let url =
            SmtpUrl::parse("smtp://mailer%40shop:p%3Ass@mail.example.com").expect("should succeed");
        assert_eq!(url.security, SmtpSecurity::StartTlsWhenOffered);
        assert_eq!(url.host, "mail.example.com");
        assert_eq!(url.port, 587);
        assert_eq!(
            url.credentials,
            Some(("mailer@shop".to_owned(), "p:ss".to_owned()))
        );
        assert!(!format!("{url:?}").contains("p:ss"), "password in Debug");

        let url = SmtpUrl::parse("smtp://mail.example.com:2525").expect("should succeed");
        assert_eq!(url.port, 2525);
        assert_eq!(url.credentials, None);
    }

    #[test]
    fn smtps_scheme_means_implicit_tls_on_465() {
        let url = SmtpUrl::parse("smtps://u:p@smtp.example.com").expect("should succeed");
        assert_eq!(url.security, SmtpSecurity::ImplicitTls);
        assert_eq!(url.port, 465);
        let url = SmtpUrl::parse("smtps://smtp.example.com:8465/").expect("should succeed");
        assert_eq!(url.port, 8465);
    }

    #[test]
    fn smtp_plain_scheme_means_no_tls_on_25() {
        let url = SmtpUrl::parse("smtp+plain://127.0.0.1").expect("should succeed");
        assert_eq!(url.security, SmtpSecurity::Plain);
        assert_eq!(url.host, "127.0.0.1");
        assert_eq!(url.port, 25);
        let url = SmtpUrl::parse("smtp+plain://[::1]:1025").expect("should succeed");
        assert_eq!((url.host.as_str(), url.port), ("::1", 1025));
        assert!(url.transport_builder().is_ok());
    }

    #[test]
    fn malformed_urls_are_refused_without_echoing_the_password() {
        for (text, expected) in [
            ("http://mail.example.com", "unsupported scheme `http`"),
            ("mail.example.com:25", "unsupported scheme"),
            ("smtp://", "no host"),
            ("smtp://user@mail.example.com", "no password"),
            ("smtp://mail.example.com/relay", "path"),
            ("smtp://mail.example.com?tls=required", "query"),
            ("not a url", "not a URL"),
            ("smtp://u:secret@mail.example.com:99999", "not a URL"),
        ] {
            let err = SmtpUrl::parse(text).expect_err("should fail");
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains("secret"), "{text}: {err}");
        }
    }

    #[test]
    fn tls_transports_build_from_starttls_and_implicit_tls_urls() {
        for text in ["smtp://u:p@mail.example.com", "smtps://mail.example.com"] {
            let url = SmtpUrl::parse(text).expect("should succeed");
            url.transport_builder()
                .unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }
}
