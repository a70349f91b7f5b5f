//! Where e-mails go: an SMTP server (`FEIRA_NOTIFICATIONS_SMTP_URL`), or by
//! default a local mail folder of RFC 5322 `.eml` files, one per e-mail,
//! named after its id and written atomically (temporary file + rename), so
//! a retry after a crash overwrites the same file rather than adding one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::domain::Email;

#[derive(Clone)]
pub struct Transport {
    from: Mailbox,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Smtp { transport: AsyncSmtpTransport<Tokio1Executor>, server: String },
    Folder(PathBuf),
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Smtp { server, .. } => write!(f, "smtp {server}"),
            Kind::Folder(dir) => write!(f, "mail folder {}", dir.display()),
        }
    }
}

/// Why an e-mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Trying again may work (connection refused, 4xx, disk full...).
    #[error("{0}")]
    Transient(String),
    /// It never will (a malformed address, a 5xx refusal).
    #[error("{0}")]
    Permanent(String),
}

impl SendError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Permanent(_))
    }
}

impl Transport {
    /// SMTP when `smtp_url` is set (`smtp://host:port`, `smtps://user:pass@host`,
    /// `smtp://host?tls=required` for STARTTLS), else the mail folder `mail_dir`.
    pub fn new(from: &str, smtp_url: Option<&str>, mail_dir: &Path, timeout: Duration) -> anyhow::Result<Self> {
        let from: Mailbox = from.parse().map_err(|e| anyhow::anyhow!("invalid sender address {from:?}: {e}"))?;
        let kind = match smtp_url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("invalid SMTP URL: {e}"))?
                    .timeout(Some(timeout))
                    .build();
                Kind::Smtp { transport, server: platform::config::redact("FEIRA_NOTIFICATIONS_SMTP_URL", url) }
            }
            None => Kind::Folder(mail_dir.to_path_buf()),
        };
        Ok(Transport { from, kind })
    }

    /// The e-mail as an RFC 5322 message. Its Message-ID and Date come from
    /// the e-mail's id and creation time, so every attempt is the same message.
    pub fn message(&self, email: &Email) -> Result<Message, SendError> {
        let to_raw = email.to.as_deref().ok_or_else(|| SendError::Permanent("the e-mail has no recipient".into()))?;
        let to: Mailbox =
            to_raw.parse().map_err(|e| SendError::Permanent(format!("invalid recipient {to_raw:?}: {e}")))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(message_id(email.id, &self.from)))
            .date(SystemTime::from(email.created_at))
            .header(ContentType::TEXT_PLAIN)
            .body(email.body.clone())
            .map_err(|e| SendError::Permanent(format!("build the message: {e}")))
    }

    pub async fn send(&self, email: &Email) -> Result<(), SendError> {
        let message = self.message(email)?;
        match &self.kind {
            Kind::Smtp { transport, .. } => match transport.send(message).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("smtp: {e}"))),
                Err(e) => Err(SendError::Transient(format!("smtp: {e}"))),
            },
            Kind::Folder(dir) => write_atomically(dir, email.id, &message.formatted())
                .await
                .map_err(|e| SendError::Transient(format!("write to the mail folder {}: {e}", dir.display()))),
        }
    }
}

/// `<id@sender domain>`.
pub fn message_id(id: Uuid, from: &Mailbox) -> String {
    format!("<{id}@{}>", from.email.domain())
}

async fn write_atomically(dir: &Path, id: Uuid, bytes: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let tmp = dir.join(format!(".{id}.eml.tmp"));
    let mut f = tokio::fs::File::create(&tmp).await?;
    f.write_all(bytes).await?;
    f.sync_all().await?;
    drop(f);
    tokio::fs::rename(&tmp, dir.join(format!("{id}.eml"))).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::domain::render::Rendered;
    use crate::domain::{EmailKind, EmailStatus};

    #[test]
    fn the_message_is_the_same_on_every_attempt() {
        let t =
            Transport::new("feira <no-reply@feira.local>", None, Path::new("/tmp/x"), Duration::from_secs(1)).unwrap();
        let rendered = Rendered { subject: "Sua nota fiscal nº 1".into(), body: "Olá,\nnº 1\n".into() };
        let email = Email::new(
            EmailKind::InvoiceIssued,
            Uuid::nil(),
            Uuid::nil(),
            Some("ana@example.com"),
            rendered,
            Uuid::nil(),
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(email.status, EmailStatus::Pending);
        let a = t.message(&email).unwrap().formatted();
        let b = t.message(&email).unwrap().formatted();
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        assert!(text.contains(&format!("Message-ID: <{}@feira.local>\r\n", email.id)), "{text}");
        assert!(text.contains("To: ana@example.com\r\n"), "{text}");
        assert!(text.contains("Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"), "{text}");
    }

    /// (The SMTP pool starts a task, so a runtime is needed.)
    #[tokio::test]
    async fn a_bad_sender_or_smtp_url_is_refused_at_start() {
        assert!(Transport::new("not an address", None, Path::new("/tmp"), Duration::from_secs(1)).is_err());
        assert!(Transport::new("a@b.co", Some("ftp://nope"), Path::new("/tmp"), Duration::from_secs(1)).is_err());
        let t = Transport::new(
            "a@b.co",
            Some("smtps://user:secret@mail.example:465"),
            Path::new("/tmp"),
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(!t.to_string().contains("secret"), "{t}");
    }
}
