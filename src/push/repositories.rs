//! The repository check before a push: every target repository must exist,
//! or be created when the request allows it.

use std::collections::{BTreeMap, HashMap};

use aws_config::Region;
use aws_types::SdkConfig;

use super::PushRequest;
use crate::error::{EcrStatus, Error, Result};
use crate::operation::OperationContext;
use crate::plan::{Action, Plan};
use crate::repositories::{RepositoryOptions, ensure_repositories};

/// Checks (and creates, when asked) the repositories of every image to push.
///
/// Returns the error of each repository that is missing or could not be
/// created, keyed by registry host and repository name. A user allowed to
/// push but not to describe repositories gets a warning and no check,
/// unless the request allows creating repositories.
pub async fn check(
    config: &SdkConfig,
    plan: &Plan,
    request: &PushRequest,
    context: &OperationContext,
) -> Result<HashMap<(String, String), Error>> {
    let options = RepositoryOptions {
        create: request.create_repository,
        tag_mutability: request.tag_mutability.clone(),
        scan_on_push: request.scan_on_push,
    };
    let mut names_by_registry: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in plan.items.iter().filter(|item| matches!(item.action, Action::Push)) {
        if let Some(registry) = &item.registry {
            names_by_registry.entry(registry.host.clone()).or_default().push(item.repository.clone());
        }
    }
    let mut errors = HashMap::new();
    for registry in &plan.registries {
        let Some(names) = names_by_registry.get(&registry.host) else { continue };
        let ecr_config = aws_sdk_ecr::config::Builder::from(config)
            .region(Region::new(registry.region.clone()))
            .use_fips(registry.fips)
            .build();
        let client = aws_sdk_ecr::Client::from_conf(ecr_config);
        let checked = context.run_cancellable(ensure_repositories(&client, registry, names, &options)).await;
        let results = match checked {
            Ok(results) => results,
            Err(error) if error.status == EcrStatus::Denied && !options.create => {
                tracing::warn!(
                    registry = %registry.host,
                    "could not check the repositories ({}); pushing without the check",
                    error.message
                );
                continue;
            }
            Err(error) => return Err(error),
        };
        for (name, result) in results {
            match result {
                Ok(state) if state.created => tracing::info!(registry = %registry.host, repository = %name, "created the repository"),
                Ok(_) => {}
                Err(error) => {
                    errors.insert((registry.host.clone(), name), error);
                }
            }
        }
    }
    Ok(errors)
}
