//! The S3 path against a real S3-compatible server on this machine: moto in
//! server mode (`python3 -m moto.server`, from PyPI `moto[server]`), started
//! as a child process per test on a free port and killed at the end. When
//! moto is not installed the test says so and skips (CI installs it).

use std::process::Stdio;

use object_store::ObjectStoreExt as _;
use object_store::aws::AmazonS3Builder;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::helpers::{Harness, Shop, WAIT, product_json, sha256_hex};
use crate::{latest, parse, versioned};
use platform::testing::eventually;

const BUCKET: &str = "feira-catalogs";

/// A moto server on 127.0.0.1, killed when dropped.
struct Moto {
    port: u16,
    child: Child,
}

impl Moto {
    /// Whether `python3 -m moto.server` can run here.
    async fn available() -> bool {
        Command::new("python3")
            .args(["-c", "import moto.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
    }

    /// Starts moto on `port` (0: a free one) and waits until it answers.
    async fn start(port: u16) -> Moto {
        let port = if port == 0 {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("find a free port");
            l.local_addr().expect("addr").port()
        } else {
            port
        };
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start moto");
        let moto = Moto { port, child };
        let http = reqwest::Client::new();
        let url = moto.url("/moto-api/");
        eventually(WAIT, "moto answering", || {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(&url).send().await.ok().map(|_| ()) }
        })
        .await;
        moto
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Creates the bucket (moto takes an unsigned `PUT /<bucket>`).
    async fn create_bucket(&self, bucket: &str) {
        let res = reqwest::Client::new().put(self.url(&format!("/{bucket}"))).send().await.expect("create bucket");
        assert!(res.status().is_success(), "create bucket: {}", res.status());
    }

    /// An object's bytes, or `None` when it does not exist (read with a
    /// signed request, as moto refuses anonymous reads of private objects).
    async fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let store = AmazonS3Builder::new()
            .with_endpoint(self.url(""))
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .expect("an S3 client for moto");
        match store.get(&object_store::path::Path::from(key)).await {
            Ok(got) => Some(got.bytes().await.expect("read the object").to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("GET {key}: {e}"),
        }
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogs_are_written_to_an_s3_compatible_server_and_survive_its_outage() {
    if !Moto::available().await {
        eprintln!(
            "SKIPPED: moto is not installed, so there is no S3-compatible server to test against; \
             install it with `python3 -m pip install 'moto[server]'`"
        );
        return;
    }
    let moto = Moto::start(0).await;
    moto.create_bucket(BUCKET).await;
    let endpoint = moto.url("");
    let h = Harness::start_with(|env, _| {
        env.set("FEIRA_CATALOG_PUBLISHER_STORE", format!("s3://{BUCKET}"));
        env.set("FEIRA_CATALOG_PUBLISHER_S3_ENDPOINT", endpoint.clone());
        env.set("FEIRA_CATALOG_PUBLISHER_S3_REGION", "us-east-1");
        env.set("FEIRA_CATALOG_PUBLISHER_S3_ACCESS_KEY_ID", "test");
        env.set("FEIRA_CATALOG_PUBLISHER_S3_SECRET_ACCESS_KEY", "test");
    })
    .await;
    let shop = Shop::new();
    let mut p = shop.new_product("S3-1", None, 700, 1);
    h.send(&[shop.owner("Nuvem", 1), shop.product(&p)]).await;
    h.wait_version(shop.owner_id, 1).await;

    let bytes = moto.object(BUCKET, &latest(shop.owner_id)).await.expect("the current catalog in the bucket");
    assert_eq!(parse(&bytes)["uncategorized"], json!([product_json(&p, 0)]));
    assert_eq!(moto.object(BUCKET, &versioned(shop.owner_id, 1)).await.as_deref(), Some(bytes.as_slice()));
    assert_eq!(h.versions(shop.owner_id).await, vec![(1, sha256_hex(&bytes))]);
    assert_eq!(h.announced(shop.owner_id).await[0].payload.sha256, sha256_hex(&bytes));
    assert!(h.object(&latest(shop.owner_id)).is_none(), "nothing went to the local folder");

    // The server goes away: the change waits, dirty, and is retried.
    let port = moto.port;
    moto.stop().await;
    p.price_cents = 800;
    p.changed_at = shop.at(2);
    let change = [shop.product(&p)];
    h.send(&change).await;
    h.wait_applied(&change).await;
    let db = h.db.clone();
    let owner = shop.owner_id;
    eventually(WAIT, "a failed attempt against the stopped server", || {
        let db = db.clone();
        async move {
            let failures: i32 = sqlx::query_scalar("SELECT failures FROM publications WHERE owner_id = $1")
                .bind(owner)
                .fetch_one(&db)
                .await
                .ok()?;
            (failures >= 1).then_some(())
        }
    })
    .await;
    assert_eq!(h.version(owner).await, 1);
    assert!(h.metric("catalog_publisher_publish_failures_total").await >= 1.0);

    // It comes back (empty: moto keeps its state in memory): version 2 lands.
    let moto = Moto::start(port).await;
    moto.create_bucket(BUCKET).await;
    h.wait_version(owner, 2).await;
    let bytes = moto.object(BUCKET, &latest(owner)).await.expect("the current catalog after the outage");
    assert_eq!(parse(&bytes)["uncategorized"][0]["price_cents"], 800);
    assert_eq!(moto.object(BUCKET, &versioned(owner, 2)).await.as_deref(), Some(bytes.as_slice()));
    assert_eq!(h.versions(owner).await[1], (2, sha256_hex(&bytes)));
    h.close().await;
    moto.stop().await;
}
