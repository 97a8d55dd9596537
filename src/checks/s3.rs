//! Signed S3 calls per bucket: HeadBucket (reads x-amz-bucket-region even on 301/400/403),
//! GetBucketLocation, ListObjectsV2 (max-keys 1), GetObject of --key (first bytes only), and
//! with --write-test a PutObject then DeleteObject under a clearly named prefix.
//!
//! A directory bucket (S3 Express One Zone) gets the same calls but GetBucketLocation, which
//! directory buckets do not support; the SDK authorizes them with the session credentials of
//! its own CreateSession call on the zonal endpoint, as every application's SDK does.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::calls::{CallSite, SdkClients, bounded};
use crate::report::{CallOutcome, CallResult};

pub const WRITE_TEST_PREFIX: &str = "vpce-probe-write-test/";

pub struct BucketCalls<'a> {
    pub clients: &'a SdkClients,
    pub endpoint_url: Option<&'a str>,
    /// An S3 Express One Zone directory bucket.
    pub directory: bool,
    pub bucket: &'a str,
    pub key: Option<&'a str>,
    pub write_test: bool,
    pub site: CallSite,
    pub timeout: Duration,
    /// The calls one after another, over the one connection the first opens: when the run
    /// has more calls for an address than its bound lets through at once, they would queue
    /// anyway, and in turn each bucket costs one TLS handshake instead of one per call.
    pub in_turn: bool,
}

impl BucketCalls<'_> {
    /// The read calls at once (GetObject only with a key), and the write test beside them;
    /// or all in turn (`in_turn`).
    pub async fn run(&self) -> Vec<CallResult> {
        let client = self.clients.s3(self.endpoint_url);
        let get = async {
            match self.key {
                Some(key) => Some(self.get_object(&client, key).await),
                None => None,
            }
        };
        let location = async {
            match self.directory {
                false => Some(self.bucket_location(&client).await),
                true => None,
            }
        };
        let (head, location, list, get, write) = if self.in_turn {
            let head = self.head_bucket(&client).await;
            // A wait that would follow another is not made: with no answer to HeadBucket, each
            // later call in turn would cost its own timeout.
            if head.outcome == CallOutcome::Timeout {
                return self.unanswered_after(head);
            }
            let location = location.await;
            let list = self.list_objects(&client).await;
            let get = get.await;
            (head, location, list, get, self.write_test(&client).await)
        } else {
            tokio::join!(
                self.head_bucket(&client),
                location,
                self.list_objects(&client),
                get,
                self.write_test(&client)
            )
        };
        let mut results = vec![head];
        results.extend(location);
        results.push(list);
        results.extend(get);
        results.extend(write);
        results
    }

    /// HeadBucket had no answer, in turn: the bucket's other calls as skipped, saying why.
    fn unanswered_after(&self, head: CallResult) -> Vec<CallResult> {
        let why = "not made: HeadBucket had no answer within the timeout, and this bucket's calls \
                   go in turn (--max-calls-per-address)";
        // A directory bucket's zonal calls are all authorized by s3express:CreateSession.
        let skip = |operation: &str, action: &str| {
            let action = if self.directory {
                "s3express:CreateSession"
            } else {
                action
            };
            self.site.skipped(operation, action, why.to_string())
        };
        let mut results = vec![head];
        if !self.directory {
            results.push(skip("GetBucketLocation", "s3:GetBucketLocation"));
        }
        results.push(skip("ListObjectsV2", "s3:ListBucket"));
        if self.key.is_some() {
            results.push(skip("GetObject", "s3:GetObject"));
        }
        if self.write_test {
            results.push(skip("PutObject", "s3:PutObject"));
        }
        results
    }

    /// One call with a response capture, bounded by three timeouts (the SDK's own retries
    /// and a redirect fit in it).
    async fn call<T, E, F, Fut>(
        &self,
        operation: &str,
        action: &str,
        call: F,
        detail: impl FnOnce(&T) -> Option<String>,
    ) -> CallResult
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let limit = self.timeout * 3;
        // A directory bucket's zonal calls are all authorized by s3express:CreateSession.
        let action = if self.directory {
            "s3express:CreateSession"
        } else {
            action
        };
        let result = self.site.run(operation, action, call, detail);
        bounded(limit, result, &self.site, operation, action).await
    }

    async fn head_bucket(&self, client: &Client) -> CallResult {
        self.call(
            "HeadBucket",
            "s3:ListBucket",
            || {
                let request = client.head_bucket().bucket(self.bucket);
                request.send()
            },
            |out| out.bucket_region().map(|r| format!("bucket in {r}")),
        )
        .await
    }

    async fn bucket_location(&self, client: &Client) -> CallResult {
        self.call(
            "GetBucketLocation",
            "s3:GetBucketLocation",
            || {
                let request = client.get_bucket_location().bucket(self.bucket);
                request.send()
            },
            |out| {
                // An empty constraint is us-east-1; "EU" is the legacy name of eu-west-1.
                let region = match out.location_constraint().map(|c| c.as_str()) {
                    None | Some("") => "us-east-1",
                    Some("EU") => "eu-west-1",
                    Some(other) => other,
                };
                Some(format!("location {region}"))
            },
        )
        .await
    }

    async fn list_objects(&self, client: &Client) -> CallResult {
        self.call(
            "ListObjectsV2",
            "s3:ListBucket",
            || {
                let request = client.list_objects_v2().bucket(self.bucket).max_keys(1);
                request.send()
            },
            |out| Some(format!("{} key(s) listed", out.key_count().unwrap_or(0))),
        )
        .await
    }

    /// The object's first 16 bytes only.
    async fn get_object(&self, client: &Client, key: &str) -> CallResult {
        self.call(
            "GetObject",
            "s3:GetObject",
            || {
                let request = client
                    .get_object()
                    .bucket(self.bucket)
                    .key(key)
                    .range("bytes=0-15");
                request.send()
            },
            |out| {
                Some(format!(
                    "{} byte(s) of {key} read",
                    out.content_length().unwrap_or(0)
                ))
            },
        )
        .await
    }

    /// With --write-test: PutObject of a small object under the write-test prefix, then
    /// DeleteObject of exactly that object if it was written.
    async fn write_test(&self, client: &Client) -> Vec<CallResult> {
        if !self.write_test {
            return Vec::new();
        }
        let key = format!("{WRITE_TEST_PREFIX}{}", uuid::Uuid::new_v4());
        let put = self
            .call(
                "PutObject",
                "s3:PutObject",
                || {
                    let request = client
                        .put_object()
                        .bucket(self.bucket)
                        .key(&key)
                        .body(ByteStream::from_static(b"vpce-probe write test\n"));
                    request.send()
                },
                |_| Some(format!("wrote {key}")),
            )
            .await;
        if put.outcome != CallOutcome::Ok {
            return vec![put];
        }
        let delete = self
            .call(
                "DeleteObject",
                "s3:DeleteObject",
                || {
                    let request = client.delete_object().bucket(self.bucket).key(&key);
                    request.send()
                },
                |_| Some(format!("deleted {key}")),
            )
            .await;
        vec![put, delete]
    }
}
