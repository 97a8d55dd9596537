//! Signed S3 calls per bucket: HeadBucket (reads x-amz-bucket-region even on 301/400/403),
//! GetBucketLocation, ListObjectsV2 (max-keys 1), GetObject of --key (first bytes only), and
//! with --write-test a PutObject then DeleteObject under a clearly named prefix.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;

use super::calls::{CallSite, bounded};
use crate::report::CallResult;

pub const WRITE_TEST_PREFIX: &str = "vpce-probe-write-test/";

pub struct BucketCalls<'a> {
    pub sdk: &'a SdkConfig,
    pub endpoint_url: Option<&'a str>,
    pub bucket: &'a str,
    pub key: Option<&'a str>,
    pub write_test: bool,
    pub site: CallSite,
    pub timeout: Duration,
}

impl BucketCalls<'_> {
    pub async fn run(&self) -> Vec<CallResult> {
        let mut conf = aws_sdk_s3::config::Builder::from(self.sdk);
        if let Some(url) = self.endpoint_url {
            conf = conf.endpoint_url(url);
        }
        let client = aws_sdk_s3::Client::from_conf(conf.build());
        let bucket = self.bucket;
        let site = &self.site;
        let limit = self.timeout * 3;
        let head = bounded(
            limit,
            site.run(
                "HeadBucket",
                "s3:ListBucket",
                |cap| {
                    client
                        .head_bucket()
                        .bucket(bucket)
                        .customize()
                        .interceptor(cap)
                        .send()
                },
                |out| out.bucket_region().map(|r| format!("bucket in {r}")),
            ),
            site,
            "HeadBucket",
            "s3:ListBucket",
        );
        let location = bounded(
            limit,
            site.run(
                "GetBucketLocation",
                "s3:GetBucketLocation",
                |cap| {
                    client
                        .get_bucket_location()
                        .bucket(bucket)
                        .customize()
                        .interceptor(cap)
                        .send()
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
            ),
            site,
            "GetBucketLocation",
            "s3:GetBucketLocation",
        );
        let list = bounded(
            limit,
            site.run(
                "ListObjectsV2",
                "s3:ListBucket",
                |cap| {
                    client
                        .list_objects_v2()
                        .bucket(bucket)
                        .max_keys(1)
                        .customize()
                        .interceptor(cap)
                        .send()
                },
                |out| Some(format!("{} key(s) listed", out.key_count().unwrap_or(0))),
            ),
            site,
            "ListObjectsV2",
            "s3:ListBucket",
        );
        let get = async {
            let key = self.key?;
            Some(
                bounded(
                    limit,
                    site.run(
                        "GetObject",
                        "s3:GetObject",
                        |cap| {
                            client
                                .get_object()
                                .bucket(bucket)
                                .key(key)
                                .range("bytes=0-15")
                                .customize()
                                .interceptor(cap)
                                .send()
                        },
                        |out| {
                            Some(format!(
                                "{} byte(s) of {key} read",
                                out.content_length().unwrap_or(0)
                            ))
                        },
                    ),
                    site,
                    "GetObject",
                    "s3:GetObject",
                )
                .await,
            )
        };
        let write = async {
            if !self.write_test {
                return Vec::new();
            }
            let key = format!("{WRITE_TEST_PREFIX}{}", uuid::Uuid::new_v4());
            let put = bounded(
                limit,
                site.run(
                    "PutObject",
                    "s3:PutObject",
                    |cap| {
                        client
                            .put_object()
                            .bucket(bucket)
                            .key(&key)
                            .body(ByteStream::from_static(b"vpce-probe write test\n"))
                            .customize()
                            .interceptor(cap)
                            .send()
                    },
                    |_| Some(format!("wrote {key}")),
                ),
                site,
                "PutObject",
                "s3:PutObject",
            )
            .await;
            let mut out = vec![put];
            // Only delete what was written.
            if out[0].outcome == crate::report::CallOutcome::Ok {
                out.push(
                    bounded(
                        limit,
                        site.run(
                            "DeleteObject",
                            "s3:DeleteObject",
                            |cap| {
                                client
                                    .delete_object()
                                    .bucket(bucket)
                                    .key(&key)
                                    .customize()
                                    .interceptor(cap)
                                    .send()
                            },
                            |_| Some(format!("deleted {key}")),
                        ),
                        site,
                        "DeleteObject",
                        "s3:DeleteObject",
                    )
                    .await,
                );
            }
            out
        };
        let (head, location, list, get, write) = tokio::join!(head, location, list, get, write);
        let mut results = vec![head, location, list];
        results.extend(get);
        results.extend(write);
        results
    }
}
