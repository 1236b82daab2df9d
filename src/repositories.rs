//! ECR repositories of a push: which exist, and creation of the missing ones.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesError;
use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability, Repository};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::aws::map_sdk_error;
use crate::error::{Error, Result};
use crate::registry::{EcrRegistry, is_valid_ecr_repository_name};

/// Maximum `repositoryNames` of one DescribeRepositories call, from the ECR API reference.
const DESCRIBE_BATCH_SIZE: usize = 100;
/// ECR calls about single repositories that run at once.
const CONCURRENT_CALLS: usize = 8;

/// Options for repositories that do not exist.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RepositoryOptions {
    /// Create missing repositories instead of failing them.
    pub create: bool,
    /// Tag mutability of created repositories, `MUTABLE` or `IMMUTABLE`; ECR's
    /// default (`MUTABLE`) when `None`.
    pub tag_mutability: Option<String>,
    /// Turn on scan on push for created repositories.
    pub scan_on_push: bool,
}

/// An ECR repository that exists, found or created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryState {
    /// Repository name, for example `team/app`.
    pub name: String,
    /// Repository URI as ECR returns it (`<account>.dkr.ecr.<region>.amazonaws.com/<name>`).
    pub uri: Option<String>,
    /// Repository ARN.
    pub arn: Option<String>,
    /// True when this call created the repository.
    pub created: bool,
    /// Tag mutability, for example `MUTABLE`.
    pub tag_mutability: Option<String>,
    /// Scan on push setting, when ECR returned one.
    pub scan_on_push: Option<bool>,
}

/// Checks that the repositories exist in `registry`, creating the missing
/// ones when `options.create` is set.
///
/// Returns one entry per distinct name. An invalid name, a missing
/// repository without `create`, or a failed creation is an error of that
/// entry only. The whole
/// call fails when DescribeRepositories fails for another reason than a
/// missing repository (denied, expired credentials, network) or when
/// `options.tag_mutability` is invalid.
pub async fn ensure_repositories(
    client: &aws_sdk_ecr::Client,
    registry: &EcrRegistry,
    repositories: &[String],
    options: &RepositoryOptions,
) -> Result<HashMap<String, Result<RepositoryState>>> {
    let tag_mutability = parse_tag_mutability(options.tag_mutability.as_deref())?;
    let mut results = HashMap::new();
    let mut names = Vec::new();
    for name in repositories.iter().collect::<BTreeSet<_>>() {
        if is_valid_ecr_repository_name(name) {
            names.push(name.clone());
        } else {
            let error = Error::invalid(
                "InvalidEcrRepositoryName",
                format!(
                    "Repository name '{name}' is invalid for ECR: use 2 to 256 characters, lowercase letters and digits separated by single '.', '_', '-' or '/'."
                ),
            )
            .with_target(name.clone());
            results.insert(name.clone(), Err(error));
        }
    }
    let endpoint = format!("the ECR API of region {}", registry.region);

    let mut missing = Vec::new();
    for batch in names.chunks(DESCRIBE_BATCH_SIZE) {
        let (found, batch_missing) = describe_batch(client, registry, batch, &endpoint).await?;
        for repository in found {
            let state = state_of(&repository, false);
            results.insert(state.name.clone(), Ok(state));
        }
        missing.extend(batch_missing);
    }

    let created = futures_util::stream::iter(missing)
        .map(|name| {
            let tag_mutability = tag_mutability.clone();
            let endpoint = &endpoint;
            async move {
                let result = if options.create {
                    create_repository(client, registry, &name, tag_mutability, options.scan_on_push, endpoint).await
                } else {
                    Err(Error::not_found(
                        "RepositoryNotFound",
                        format!(
                            "Repository '{name}' does not exist in registry {}: create it, or run with -CreateRepository to create missing repositories.",
                            registry.ecr_host
                        ),
                    )
                    .with_target(name.clone()))
                };
                (name, result)
            }
        })
        .buffer_unordered(CONCURRENT_CALLS)
        .collect::<Vec<_>>()
        .await;
    results.extend(created);
    Ok(results)
}

fn parse_tag_mutability(value: Option<&str>) -> Result<Option<ImageTagMutability>> {
    match value.map(str::to_ascii_uppercase).as_deref() {
        None => Ok(None),
        Some("MUTABLE") => Ok(Some(ImageTagMutability::Mutable)),
        Some("IMMUTABLE") => Ok(Some(ImageTagMutability::Immutable)),
        Some(_) => Err(Error::invalid(
            "InvalidTagMutability",
            format!(
                "Tag mutability '{}' is invalid: use MUTABLE or IMMUTABLE.",
                value.unwrap_or_default()
            ),
        )
        .with_target(value.unwrap_or_default())),
    }
}

/// Describes one batch; returns the repositories found and the names missing.
///
/// DescribeRepositories fails the whole call with RepositoryNotFoundException
/// when any name is missing (moto 5 does, and ECR documents the exception for
/// a named repository that does not exist). The message names only one
/// missing repository, so that name is set aside and, while more than
/// [`CONCURRENT_CALLS`] names remain, the batch is described again. The last
/// names are then described one by one, all at once. So a batch of n names
/// with k missing takes about k + 1 calls when n is large, and at most
/// n + 1 calls in two rounds when n is small.
async fn describe_batch(
    client: &aws_sdk_ecr::Client,
    registry: &EcrRegistry,
    batch: &[String],
    endpoint: &str,
) -> Result<(Vec<Repository>, Vec<String>)> {
    let mut pending: Vec<String> = batch.to_vec();
    let mut missing = Vec::new();
    while pending.len() > CONCURRENT_CALLS {
        match describe(client, registry, &pending).await {
            Ok(found) => return Ok((found, missing)),
            Err(error) if is_not_found(&error) => {
                let message = error.message().unwrap_or_default().to_owned();
                match pending
                    .iter()
                    .position(|name| message.contains(&format!("'{name}'")))
                {
                    Some(index) => missing.push(pending.remove(index)),
                    None => break,
                }
            }
            Err(error) => return Err(describe_error(error, registry, endpoint)),
        }
    }
    if pending.len() > 1 && pending.len() <= CONCURRENT_CALLS {
        // One batch call first: when every repository exists, it is the only call.
        match describe(client, registry, &pending).await {
            Ok(found) => return Ok((found, missing)),
            Err(error) if is_not_found(&error) => {
                let message = error.message().unwrap_or_default().to_owned();
                if let Some(index) = pending
                    .iter()
                    .position(|name| message.contains(&format!("'{name}'")))
                {
                    missing.push(pending.remove(index));
                }
            }
            Err(error) => return Err(describe_error(error, registry, endpoint)),
        }
    }
    let (found, singles_missing) = describe_one_by_one(client, registry, pending, endpoint).await?;
    missing.extend(singles_missing);
    Ok((found, missing))
}

/// Describes each name in its own call, [`CONCURRENT_CALLS`] at a time.
async fn describe_one_by_one(
    client: &aws_sdk_ecr::Client,
    registry: &EcrRegistry,
    names: Vec<String>,
    endpoint: &str,
) -> Result<(Vec<Repository>, Vec<String>)> {
    let described = futures_util::stream::iter(names)
        .map(|name| async move {
            let result = describe(client, registry, std::slice::from_ref(&name)).await;
            (name, result)
        })
        .buffer_unordered(CONCURRENT_CALLS)
        .collect::<Vec<_>>()
        .await;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for (name, result) in described {
        match result {
            Ok(repositories) => found.extend(repositories),
            Err(error) if is_not_found(&error) => missing.push(name),
            Err(error) => return Err(describe_error(error, registry, endpoint)),
        }
    }
    Ok((found, missing))
}

type DescribeResult = std::result::Result<
    Vec<Repository>,
    aws_sdk_ecr::error::SdkError<DescribeRepositoriesError, aws_smithy_runtime_api::http::Response>,
>;

async fn describe(
    client: &aws_sdk_ecr::Client,
    registry: &EcrRegistry,
    names: &[String],
) -> DescribeResult {
    tracing::debug!(registry = %registry.ecr_host, count = names.len(), "describing repositories");
    let output = client
        .describe_repositories()
        .registry_id(&registry.account_id)
        .set_repository_names(Some(names.to_vec()))
        .send()
        .await?;
    Ok(output.repositories.unwrap_or_default())
}

fn is_not_found(
    error: &aws_sdk_ecr::error::SdkError<
        DescribeRepositoriesError,
        aws_smithy_runtime_api::http::Response,
    >,
) -> bool {
    matches!(
        error.as_service_error(),
        Some(DescribeRepositoriesError::RepositoryNotFoundException(_))
    )
}

fn describe_error(
    error: aws_sdk_ecr::error::SdkError<
        DescribeRepositoriesError,
        aws_smithy_runtime_api::http::Response,
    >,
    registry: &EcrRegistry,
    endpoint: &str,
) -> Error {
    map_sdk_error(error, "ECR DescribeRepositories", endpoint)
        .with_target(registry.ecr_host.clone())
}

async fn create_repository(
    client: &aws_sdk_ecr::Client,
    registry: &EcrRegistry,
    name: &str,
    tag_mutability: Option<ImageTagMutability>,
    scan_on_push: bool,
    endpoint: &str,
) -> Result<RepositoryState> {
    tracing::info!(registry = %registry.ecr_host, repository = %name, "creating repository");
    let mut request = client
        .create_repository()
        .registry_id(&registry.account_id)
        .repository_name(name)
        .image_scanning_configuration(
            ImageScanningConfiguration::builder()
                .scan_on_push(scan_on_push)
                .build(),
        );
    if let Some(mutability) = tag_mutability {
        request = request.image_tag_mutability(mutability);
    }
    match request.send().await {
        Ok(output) => match output.repository {
            Some(repository) => Ok(state_of(&repository, true)),
            None => Ok(RepositoryState {
                name: name.to_owned(),
                uri: None,
                arn: None,
                created: true,
                tag_mutability: None,
                scan_on_push: Some(scan_on_push),
            }),
        },
        Err(error) if error.code() == Some("RepositoryAlreadyExistsException") => {
            // Another push created it since the describe call.
            tracing::info!(repository = %name, "repository was created concurrently");
            Ok(RepositoryState {
                name: name.to_owned(),
                uri: Some(format!("{}/{name}", registry.ecr_host)),
                arn: None,
                created: false,
                tag_mutability: None,
                scan_on_push: None,
            })
        }
        Err(error) => {
            let mapped =
                map_sdk_error(error, "ECR CreateRepository", endpoint).with_target(name.to_owned());
            tracing::warn!(repository = %name, error_id = %mapped.error_id, "repository was not created");
            let message = format!(
                "Repository '{name}' could not be created in registry {}: {}",
                registry.ecr_host, mapped.message
            );
            Err(Error { message, ..mapped })
        }
    }
}

fn state_of(repository: &Repository, created: bool) -> RepositoryState {
    RepositoryState {
        name: repository.repository_name.clone().unwrap_or_default(),
        uri: repository.repository_uri.clone(),
        arn: repository.repository_arn.clone(),
        created,
        tag_mutability: repository
            .image_tag_mutability
            .as_ref()
            .map(|mutability| mutability.as_str().to_owned()),
        scan_on_push: repository
            .image_scanning_configuration
            .as_ref()
            .map(|configuration| configuration.scan_on_push),
    }
}
