//! Image sources of a push: the engine by default, or an OCI layout folder
//! or a docker-archive tar named per service or image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::compose::Service;
use crate::error::{Error, Result};
use crate::plan::PlanItem;
use crate::source::SourceSpec;

/// Image sources given in the request, checked and with absolute paths.
#[derive(Clone, Debug)]
pub struct SourceMap {
    by_name: BTreeMap<String, SourceSpec>,
}

impl SourceMap {
    /// Parses the request's `sources`: keys are service names or image
    /// references, values `oci-layout:PATH`, `oci-layout:PATH#REF`,
    /// `docker-archive:PATH` or `docker-archive:PATH#IMAGE`. Relative paths
    /// resolve against the project directory.
    pub fn new(sources: &BTreeMap<String, String>, project_directory: &Path, services: &[Service]) -> Result<SourceMap> {
        let mut by_name = BTreeMap::new();
        for (key, value) in sources {
            let is_service = services.iter().any(|service| &service.name == key);
            let is_reference = key.contains('/') || key.contains(':');
            if !is_service && !is_reference {
                let known: Vec<&str> = services.iter().map(|service| service.name.as_str()).collect();
                return Err(Error::invalid(
                    "UnknownSourceKey",
                    format!(
                        "The image source '{key}' names no service of the project: use a service name ({}) or a full image reference.",
                        known.join(", ")
                    ),
                )
                .with_target(key.clone()));
            }
            by_name.insert(key.clone(), parse_source(value, project_directory)?);
        }
        Ok(SourceMap { by_name })
    }

    /// Returns the source of an image: the one named for its reference or one
    /// of its services, else the engine.
    pub fn get(&self, item: &PlanItem, docker_host: Option<&str>) -> Result<SourceSpec> {
        let named = std::iter::once(&item.reference)
            .chain(item.services.iter())
            .find_map(|name| self.by_name.get(name));
        Ok(named.cloned().unwrap_or_else(|| SourceSpec::Engine {
            docker_host: docker_host.map(str::to_owned),
            image: item.reference.clone(),
        }))
    }
}

fn parse_source(value: &str, project_directory: &Path) -> Result<SourceSpec> {
    let absolute = |path: &str| -> PathBuf {
        let path = PathBuf::from(path);
        if path.is_absolute() { path } else { project_directory.join(path) }
    };
    let split = |rest: &str| -> (String, Option<String>) {
        match rest.split_once('#') {
            Some((path, name)) if !name.is_empty() => (path.to_owned(), Some(name.to_owned())),
            _ => (rest.trim_end_matches('#').to_owned(), None),
        }
    };
    if let Some(rest) = value.strip_prefix("oci-layout:").filter(|rest| !rest.is_empty()) {
        let (path, reference) = split(rest);
        return Ok(SourceSpec::OciLayout { path: absolute(&path), reference });
    }
    if let Some(rest) = value.strip_prefix("docker-archive:").filter(|rest| !rest.is_empty()) {
        let (path, image) = split(rest);
        return Ok(SourceSpec::DockerArchive { path: absolute(&path), image });
    }
    Err(Error::invalid(
        "InvalidImageSource",
        format!(
            "The image source '{value}' is invalid: use 'oci-layout:PATH', 'oci-layout:PATH#REF', 'docker-archive:PATH' or 'docker-archive:PATH#IMAGE'."
        ),
    )
    .with_target(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_layout_joins_project() {
        let spec = parse_source("oci-layout:out/web#v1", Path::new("/src/app")).unwrap();
        assert_eq!(
            spec,
            SourceSpec::OciLayout { path: PathBuf::from("/src/app/out/web"), reference: Some("v1".to_owned()) }
        );
    }

    #[test]
    fn archive_keeps_absolute_path() {
        let spec = parse_source("docker-archive:/tmp/web.tar", Path::new("/src/app")).unwrap();
        assert_eq!(spec, SourceSpec::DockerArchive { path: PathBuf::from("/tmp/web.tar"), image: None });
    }

    #[test]
    fn unknown_kind_is_rejected() {
        let error = parse_source("tarball:/tmp/x", Path::new("/")).unwrap_err();
        assert_eq!(error.error_id, "InvalidImageSource");
        assert!(error.message.contains("tarball:/tmp/x"));
    }
}
