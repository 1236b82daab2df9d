//! The push plan of a compose project: each image once, with the services
//! that name it, its registry and what the push does with it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::compose::reference::{Reference, parse_reference};
use crate::compose::{Project, Service};
use crate::error::{Error, Result};
use crate::registry::{EcrRegistry, RegistryAliases, is_valid_ecr_repository_name};

/// Options of a plan: the services, the registry aliases and strictness.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PlanOptions {
    /// Services to push; empty means every active service. A service named
    /// here is planned even when its profiles are not enabled, as compose
    /// does for a service named on the command line.
    pub services: Vec<String>,
    /// Registry aliases; they win over the aliases of the compose file.
    pub aliases: RegistryAliases,
    /// Fail the images of registries other than ECR instead of skipping them.
    pub strict: bool,
}

/// The images of a project and what to do with each.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// One item per image, ordered by registry host, then by reference.
    pub items: Vec<PlanItem>,
    /// The ECR registries that the `Push` items go to, ordered by host.
    pub registries: Vec<EcrRegistry>,
}

impl Plan {
    /// Returns the items that will be pushed.
    pub fn pushes(&self) -> impl Iterator<Item = &PlanItem> {
        self.items.iter().filter(|item| item.action == Action::Push)
    }
}

/// One image of the plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanItem {
    /// Services that name the image, in the order of the compose files.
    pub services: Vec<String>,
    /// Normalized reference with its tag (`latest` when none is written),
    /// or the text as written when it is invalid.
    pub reference: String,
    /// ECR registry of the image, reached directly or through an alias.
    pub registry: Option<EcrRegistry>,
    /// Repository path in the registry, for example `team/app`.
    pub repository: String,
    /// Tag, when the reference has one or gets the default.
    pub tag: Option<String>,
    /// Digest, when the reference names one.
    pub digest: Option<String>,
    /// Action of the push for the image.
    pub action: Action,
}

/// Action of the push for one image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind")]
pub enum Action {
    /// Push the image to its ECR registry.
    Push,
    /// Skip the image because its registry is not ECR.
    SkipNotEcr,
    /// Skip the image because compose builds it without naming it, so it
    /// has no registry to go to.
    SkipBuildOnly,
    /// Fail the image, because it cannot be pushed.
    Fail {
        /// Error naming the problem and its fix.
        error: Error,
    },
}

/// Builds the push plan of a loaded project.
///
/// Fails only when `options.services` names a service that the project
/// does not define; problems of single images become `Fail` items.
pub fn build(project: &Project, options: &PlanOptions) -> Result<Plan> {
    let mut aliases = options.aliases.clone();
    aliases.merge_missing(&project.registry_aliases);
    let services = select_services(project, &options.services)?;

    // Items keyed by normalized reference, so that services naming the same
    // image share one item.
    let mut items: Vec<PlanItem> = Vec::new();
    let mut add = |item: PlanItem| match items
        .iter_mut()
        .find(|existing| existing.reference == item.reference && existing.action == item.action)
    {
        Some(existing) => {
            for service in item.services {
                if !existing.services.contains(&service) {
                    existing.services.push(service);
                }
            }
        }
        None => items.push(item),
    };

    for service in services {
        match (&service.image, &service.build) {
            (Some(image), build) => {
                add(image_item(service, image, &aliases, options.strict));
                for tag in build.iter().flat_map(|build| &build.tags) {
                    add(image_item(service, tag, &aliases, options.strict));
                }
            }
            (None, Some(_)) => add(build_only_item(project, service)),
            (None, None) => add(missing_image_item(service)),
        }
    }

    items.sort_by(|a, b| (sort_host(a), &a.reference).cmp(&(sort_host(b), &b.reference)));
    let mut registries: BTreeMap<String, EcrRegistry> = BTreeMap::new();
    for item in &items {
        if let (Action::Push, Some(registry)) = (&item.action, &item.registry) {
            registries
                .entry(registry.host.clone())
                .or_insert_with(|| registry.clone());
        }
    }
    Ok(Plan {
        items,
        registries: registries.into_values().collect(),
    })
}

fn select_services<'a>(project: &'a Project, names: &[String]) -> Result<Vec<&'a Service>> {
    if names.is_empty() {
        return Ok(project.active_services().collect());
    }
    for name in names {
        if project.service(name).is_none() {
            let mut known: Vec<&str> = project.services.iter().map(|s| s.name.as_str()).collect();
            known.sort_unstable();
            return Err(Error::not_found(
                "ServiceNotFound",
                format!(
                    "Service '{name}' is not defined in project '{}'. Known services: {}.",
                    project.name,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            )
            .with_target(name.clone()));
        }
    }
    Ok(project
        .services
        .iter()
        .filter(|service| names.contains(&service.name))
        .collect())
}

fn sort_host(item: &PlanItem) -> String {
    match &item.registry {
        Some(registry) => registry.host.clone(),
        None => Reference::parse(&item.reference)
            .map(|reference| reference.host())
            .unwrap_or_default(),
    }
}

fn image_item(service: &Service, image: &str, aliases: &RegistryAliases, strict: bool) -> PlanItem {
    let reference = match parse_reference(image) {
        Ok(reference) => reference.normalized().with_default_tag(),
        Err(reason) => {
            let error = invalid_image_error(service, image, &reason);
            return fail_item(service, image, error);
        }
    };
    let text = reference.to_string();
    let registry = aliases.resolve(&reference.host());
    let action = match &registry {
        Some(_) => ecr_repository_action(service, &text, &reference.path),
        None if strict => Action::Fail {
            error: Error::invalid(
                "ImageNotInEcr",
                format!(
                    "Image '{text}' of service '{}' is not in an ECR registry, and -Strict rejects such images: tag it for an ECR registry, map its registry with a registry alias, or run without -Strict.",
                    service.name
                ),
            )
            .with_target(text.clone()),
        },
        None => Action::SkipNotEcr,
    };
    PlanItem {
        services: vec![service.name.clone()],
        reference: text,
        registry,
        repository: reference.path.clone(),
        tag: reference.tag.clone(),
        digest: reference.digest.clone(),
        action,
    }
}

/// Names the empty variables when they are the likely cause: the image is
/// empty or has an empty part (`app:`, `/app`, `a//b`).
fn invalid_image_error(service: &Service, image: &str, reason: &str) -> Error {
    let variables = &service.image_empty_variables;
    let has_empty_part = image.is_empty()
        || image.starts_with(['/', ':', '@'])
        || image.ends_with(['/', ':', '@'])
        || ["//", "/:", ":@", "/@"]
            .iter()
            .any(|pair| image.contains(pair));
    if !variables.is_empty() && has_empty_part {
        let names = variables.join(", ");
        let noun = if variables.len() == 1 {
            "variable"
        } else {
            "variables"
        };
        return Error::invalid(
            "EmptyImageVariable",
            format!(
                "Image '{image}' of service '{}' has an empty repository or tag because {noun} {names} is unset or empty: set {names} in the environment or in the project's .env file.",
                service.name
            ),
        )
        .with_target(variables[0].clone());
    }
    Error::invalid(
        "InvalidImageReference",
        format!(
            "Image reference '{image}' of service '{}' is invalid: {reason}.",
            service.name
        ),
    )
    .with_target(image)
}

fn ecr_repository_action(service: &Service, reference: &str, repository: &str) -> Action {
    if is_valid_ecr_repository_name(repository) {
        return Action::Push;
    }
    Action::Fail {
        error: Error::invalid(
            "InvalidEcrRepositoryName",
            format!(
                "Image '{reference}' of service '{}' names ECR repository '{repository}', which ECR rejects: use 2 to 256 characters, lowercase letters and digits separated by single '.', '_', '-' or '/'.",
                service.name
            ),
        )
        .with_target(repository),
    }
}

fn fail_item(service: &Service, image: &str, error: Error) -> PlanItem {
    PlanItem {
        services: vec![service.name.clone()],
        reference: image.to_owned(),
        registry: None,
        repository: String::new(),
        tag: None,
        digest: None,
        action: Action::Fail { error },
    }
}

/// Returns the item of a service that compose builds and names `<project>-<service>`.
fn build_only_item(project: &Project, service: &Service) -> PlanItem {
    let default_name = format!("{}-{}", project.name, service.name);
    let (reference, repository, tag) = match Reference::parse(&default_name) {
        Ok(reference) => {
            let reference = reference.normalized().with_default_tag();
            (
                reference.to_string(),
                reference.path.clone(),
                reference.tag.clone(),
            )
        }
        Err(_) => (default_name.clone(), default_name, None),
    };
    PlanItem {
        services: vec![service.name.clone()],
        reference,
        registry: None,
        repository,
        tag,
        digest: None,
        action: Action::SkipBuildOnly,
    }
}

fn missing_image_item(service: &Service) -> PlanItem {
    let error = Error::invalid(
        "MissingImage",
        format!(
            "Service '{}' has neither an image nor a build context: add 'image' or 'build' to it.",
            service.name
        ),
    )
    .with_target(service.name.clone());
    fail_item(service, "", error)
}
