//! Object storage for the catalog documents, through the `object_store` crate:
//! a local folder by default, or an S3 bucket (AWS or any S3-compatible
//! server). The only module that talks to the store.
//!
//! Configuration (validated at start; errors name the variable):
//! - `FEIRA_CATALOG_PUBLISHER_STORE`: `file://<folder>` (a relative folder is
//!   resolved against the current directory; created on first write) or
//!   `s3://<bucket>[/<prefix>]`.
//! - For S3, the standard `AWS_*` variables (`AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//!   `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, web identity, ECS/EKS and instance
//!   credentials), each overridden by its `FEIRA_CATALOG_PUBLISHER_S3_*`
//!   variable when that is not empty. Credentials are never logged.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt as _, PutOptions, RetryConfig,
};
use platform::config::Config;

pub const STORE_VAR: &str = "FEIRA_CATALOG_PUBLISHER_STORE";
pub const S3_ENDPOINT_VAR: &str = "FEIRA_CATALOG_PUBLISHER_S3_ENDPOINT";
pub const S3_REGION_VAR: &str = "FEIRA_CATALOG_PUBLISHER_S3_REGION";
pub const S3_ACCESS_KEY_ID_VAR: &str = "FEIRA_CATALOG_PUBLISHER_S3_ACCESS_KEY_ID";
pub const S3_SECRET_ACCESS_KEY_VAR: &str = "FEIRA_CATALOG_PUBLISHER_S3_SECRET_ACCESS_KEY";

/// Longest a single write may take before it counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the documents go, as parsed from `FEIRA_CATALOG_PUBLISHER_STORE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An absolute folder.
    Local(PathBuf),
    S3 {
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing `/`.
        prefix: String,
    },
}

impl Location {
    /// Parses `file://<folder>` or `s3://<bucket>[/<prefix>]`; a relative
    /// folder is taken from `cwd`.
    pub fn parse(raw: &str, cwd: &Path) -> Result<Location, String> {
        if let Some(rest) = raw.strip_prefix("file://") {
            if rest.is_empty() {
                return Err("file:// needs a folder, e.g. file://./.feira/objects or file:///var/lib/feira".into());
            }
            let path = Path::new(rest);
            let path = if path.is_absolute() { path.to_path_buf() } else { cwd.join(path) };
            // Drop `.` components so the folder reads as it is.
            let clean: PathBuf = path.components().filter(|c| !matches!(c, Component::CurDir)).collect();
            return Ok(Location::Local(clean));
        }
        if let Some(rest) = raw.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid = (3..=63).contains(&bucket.len())
                && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
                && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
                && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !valid {
                return Err(format!(
                    "{bucket:?} is not an S3 bucket name (3 to 63 lower-case letters, digits, '-' or '.')"
                ));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|s| s.is_empty() || s == "." || s == "..") && !prefix.is_empty() {
                return Err(format!("{prefix:?} is not a valid key prefix"));
            }
            return Ok(Location::S3 { bucket: bucket.to_string(), prefix: prefix.to_string() });
        }
        Err("use file://<folder> or s3://<bucket>[/<prefix>]".into())
    }
}

/// S3 settings that override the `AWS_*` environment when not empty.
#[derive(Clone, Default)]
pub struct S3Overrides {
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Overrides")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &if self.access_key_id.is_empty() { "" } else { "***" })
            .field("secret_access_key", &if self.secret_access_key.is_empty() { "" } else { "***" })
            .finish()
    }
}

/// The object store the documents are written to.
pub struct CatalogStore {
    backend: Backend,
    description: String,
}

enum Backend {
    /// The folder is created on the first write (and again after a failure),
    /// so an unwritable folder is a failed publication, retried, not a
    /// refusal to start.
    Local {
        root: PathBuf,
        fs: tokio::sync::OnceCell<LocalFileSystem>,
    },
    Remote(Arc<dyn ObjectStore>),
}

impl CatalogStore {
    /// The store configured by the service's variables.
    pub fn from_config(config: &Config) -> anyhow::Result<CatalogStore> {
        let var = |name: &str| config.var(name).unwrap_or_default().trim().to_string();
        let raw = var(STORE_VAR);
        let cwd = std::env::current_dir().context("read the current directory")?;
        let location =
            Location::parse(&raw, &cwd).map_err(|reason| anyhow::anyhow!("invalid {STORE_VAR} {raw:?}: {reason}"))?;
        let overrides = S3Overrides {
            endpoint: var(S3_ENDPOINT_VAR),
            region: var(S3_REGION_VAR),
            access_key_id: var(S3_ACCESS_KEY_ID_VAR),
            secret_access_key: var(S3_SECRET_ACCESS_KEY_VAR),
        };
        CatalogStore::open(location, &overrides)
    }

    pub fn open(location: Location, s3: &S3Overrides) -> anyhow::Result<CatalogStore> {
        match location {
            Location::Local(root) => Ok(CatalogStore {
                description: format!("file://{}", root.display()),
                backend: Backend::Local { root, fs: tokio::sync::OnceCell::new() },
            }),
            Location::S3 { bucket, prefix } => {
                let mut b = AmazonS3Builder::from_env().with_bucket_name(&bucket);
                if !s3.endpoint.is_empty() {
                    if !(s3.endpoint.starts_with("http://") || s3.endpoint.starts_with("https://")) {
                        anyhow::bail!(
                            "invalid {S3_ENDPOINT_VAR} {:?}: use http://host:port or https://host",
                            s3.endpoint
                        );
                    }
                    b = b.with_endpoint(&s3.endpoint).with_allow_http(s3.endpoint.starts_with("http://"));
                }
                if !s3.region.is_empty() {
                    b = b.with_region(&s3.region);
                }
                if !s3.access_key_id.is_empty() {
                    b = b.with_access_key_id(&s3.access_key_id);
                }
                if !s3.secret_access_key.is_empty() {
                    b = b.with_secret_access_key(&s3.secret_access_key);
                }
                // Fail fast inside one attempt: the publisher retries the
                // owner itself, with a growing delay, without holding it.
                let b = b
                    .with_retry(RetryConfig {
                        backoff: BackoffConfig::default(),
                        max_retries: 2,
                        retry_timeout: Duration::from_secs(10),
                    })
                    .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), "3s")
                    .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "15s");
                let endpoint = b.get_config_value(&AmazonS3ConfigKey::Endpoint);
                let s3_store = b.build().with_context(|| {
                    format!(
                        "configure S3 bucket {bucket:?} from {STORE_VAR}, the FEIRA_CATALOG_PUBLISHER_S3_* and AWS_* variables"
                    )
                })?;
                let description = match (&endpoint, prefix.is_empty()) {
                    (Some(e), true) => format!("s3://{bucket} at {e}"),
                    (Some(e), false) => format!("s3://{bucket}/{prefix} at {e}"),
                    (None, true) => format!("s3://{bucket}"),
                    (None, false) => format!("s3://{bucket}/{prefix}"),
                };
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(s3_store)
                } else {
                    Arc::new(PrefixStore::new(s3_store, prefix.as_str()))
                };
                Ok(CatalogStore { backend: Backend::Remote(store), description })
            }
        }
    }

    /// Where the documents go, without credentials (for logs).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Writes `bytes` as the JSON object `key`, replacing it atomically.
    pub async fn put_json(&self, key: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let path = object_store::path::Path::parse(key).with_context(|| format!("object key {key:?}"))?;
        let write = async {
            match &self.backend {
                Backend::Local { root, fs } => {
                    let fs = fs
                        .get_or_try_init(|| async {
                            tokio::fs::create_dir_all(root)
                                .await
                                .with_context(|| format!("create the folder {}", root.display()))?;
                            anyhow::Ok(LocalFileSystem::new_with_prefix(root)?.with_fsync(true))
                        })
                        .await?;
                    fs.put(&path, bytes.into()).await?;
                }
                Backend::Remote(store) => {
                    let attributes = Attributes::from_iter([(Attribute::ContentType, "application/json")]);
                    let opts = PutOptions { attributes, ..Default::default() };
                    store.put_opts(&path, bytes.into(), opts).await?;
                }
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| anyhow::anyhow!("timed out after {}s", WRITE_TIMEOUT.as_secs()))?
            .with_context(|| format!("write {key} to {}", self.description))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_local_folder_is_resolved_against_the_current_directory() {
        let cwd = Path::new("/srv/feira");
        assert_eq!(
            Location::parse("file://./.feira/objects", cwd),
            Ok(Location::Local(PathBuf::from("/srv/feira/.feira/objects")))
        );
        assert_eq!(Location::parse("file:///var/lib/x", cwd), Ok(Location::Local(PathBuf::from("/var/lib/x"))));
        assert!(Location::parse("file://", cwd).is_err());
    }

    #[test]
    fn an_s3_url_names_a_bucket_and_maybe_a_prefix() {
        let cwd = Path::new("/");
        assert_eq!(
            Location::parse("s3://feira-catalogs", cwd),
            Ok(Location::S3 { bucket: "feira-catalogs".into(), prefix: "".into() })
        );
        assert_eq!(
            Location::parse("s3://feira-catalogs/prod/", cwd),
            Ok(Location::S3 { bucket: "feira-catalogs".into(), prefix: "prod".into() })
        );
        for bad in ["s3://", "s3://UPPER", "s3://a", "s3://-x-", "s3://ok-bucket/a//b", "/tmp/x", "http://x", ""] {
            assert!(Location::parse(bad, cwd).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_do_not_show_in_debug_output() {
        let o = S3Overrides { access_key_id: "AKIA123".into(), secret_access_key: "hush".into(), ..Default::default() };
        let text = format!("{o:?}");
        assert!(!text.contains("hush") && !text.contains("AKIA123"), "{text}");
    }

    #[tokio::test]
    async fn a_local_store_creates_its_folder_on_first_write() {
        let root = std::env::temp_dir().join(format!("feira-cp-unit-{}", uuid::Uuid::new_v4()));
        let store = CatalogStore::open(Location::Local(root.join("deep/objects")), &S3Overrides::default()).unwrap();
        store.put_json("catalogs/x.json", b"{}".to_vec()).await.unwrap();
        assert_eq!(std::fs::read(root.join("deep/objects/catalogs/x.json")).unwrap(), b"{}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
