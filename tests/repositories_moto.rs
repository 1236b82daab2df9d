//! `repositories::ensure_repositories` against moto, behind the STS gate of
//! the stand-ins.

mod support;

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_sdk_ecr::config::Region;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use ecr_compose::registry::EcrRegistry;
use ecr_compose::repositories::{RepositoryOptions, ensure_repositories};
use support::StandIns;

/// Builds an ECR client for the stand-ins without the environment or the
/// shared config files, so that nothing of the machine's AWS setup is read.
fn ecr_client(stand_ins: &StandIns) -> aws_sdk_ecr::Client {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let config = aws_sdk_ecr::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http_client)
        .region(Region::new(stand_ins.region.clone()))
        .endpoint_url(stand_ins.sts_endpoint())
        .credentials_provider(Credentials::new(
            stand_ins.access_key_id.clone(),
            stand_ins.secret_access_key.clone(),
            None,
            None,
            "stand-ins",
        ))
        .build();
    aws_sdk_ecr::Client::from_conf(config)
}

fn registry(stand_ins: &StandIns) -> EcrRegistry {
    let host = format!(
        "{}.dkr.ecr.{}.amazonaws.com",
        stand_ins.account_id, stand_ins.region
    );
    EcrRegistry::from_ecr_host(&host).expect("stand-in registry host is an ECR host")
}

async fn create(client: &aws_sdk_ecr::Client, name: &str) {
    client
        .create_repository()
        .repository_name(name)
        .send()
        .await
        .unwrap_or_else(|error| panic!("create {name}: {error:?}"));
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|name| name.to_string()).collect()
}

#[tokio::test]
async fn repositories_against_moto() {
    let stand_ins = StandIns::start(&["sts"]);
    let client = ecr_client(&stand_ins);
    let registry = registry(&stand_ins);

    existing_found(&client, &registry).await;
    missing_fails_without_create(&client, &registry).await;
    missing_created_with_settings(&client, &registry).await;
    batches_over_one_hundred(&stand_ins, &client, &registry).await;
    invalid_names_fail_alone(&client, &registry).await;
    invalid_tag_mutability_rejected(&client, &registry).await;
}

async fn existing_found(client: &aws_sdk_ecr::Client, registry: &EcrRegistry) {
    create(client, "found/web").await;
    create(client, "found/api").await;
    let requested = names(&["found/web", "found/api", "found/web"]);
    let results = ensure_repositories(client, registry, &requested, &RepositoryOptions::default())
        .await
        .unwrap();
    assert_eq!(results.len(), 2, "duplicate names give one entry");
    let web = results["found/web"].as_ref().unwrap();
    assert!(!web.created);
    assert_eq!(
        web.uri.as_deref(),
        Some(format!("{}/found/web", registry.ecr_host).as_str())
    );
    assert!(results["found/api"].is_ok());
}

async fn missing_fails_without_create(client: &aws_sdk_ecr::Client, registry: &EcrRegistry) {
    create(client, "partial/present").await;
    let requested = names(&["partial/present", "partial/absent-a", "partial/absent-b"]);
    let results = ensure_repositories(client, registry, &requested, &RepositoryOptions::default())
        .await
        .unwrap();
    assert!(results["partial/present"].is_ok());
    for name in ["partial/absent-a", "partial/absent-b"] {
        let error = results[name].as_ref().unwrap_err();
        assert_eq!(error.error_id, "RepositoryNotFound");
        assert!(error.message.contains(name), "{}", error.message);
        assert!(
            error.message.contains("-CreateRepository"),
            "{}",
            error.message
        );
    }
    let still_absent = client
        .describe_repositories()
        .repository_names("partial/absent-a")
        .send()
        .await;
    assert!(still_absent.is_err(), "nothing is created without create");
}

async fn missing_created_with_settings(client: &aws_sdk_ecr::Client, registry: &EcrRegistry) {
    create(client, "created/existing").await;
    let options = RepositoryOptions {
        create: true,
        tag_mutability: Some("IMMUTABLE".to_owned()),
        scan_on_push: true,
    };
    let requested = names(&["created/existing", "created/new"]);
    let results = ensure_repositories(client, registry, &requested, &options)
        .await
        .unwrap();
    let existing = results["created/existing"].as_ref().unwrap();
    assert!(!existing.created);
    let new = results["created/new"].as_ref().unwrap();
    assert!(new.created);
    assert_eq!(new.tag_mutability.as_deref(), Some("IMMUTABLE"));
    assert_eq!(new.scan_on_push, Some(true));

    let described = client
        .describe_repositories()
        .repository_names("created/new")
        .send()
        .await
        .unwrap();
    let repository = &described.repositories.unwrap()[0];
    assert_eq!(
        repository.image_tag_mutability.as_ref().unwrap().as_str(),
        "IMMUTABLE"
    );
}

async fn batches_over_one_hundred(
    stand_ins: &StandIns,
    client: &aws_sdk_ecr::Client,
    registry: &EcrRegistry,
) {
    let mut requested = Vec::new();
    for index in 0..125 {
        let name = format!("batch/repo-{index:03}");
        if index % 40 != 7 {
            create(client, &name).await;
        }
        requested.push(name);
    }
    stand_ins.reset_stats();
    let results = ensure_repositories(client, registry, &requested, &RepositoryOptions::default())
        .await
        .unwrap();
    assert_eq!(results.len(), 125);
    let missing: Vec<&String> = results
        .iter()
        .filter(|(_, result)| result.is_err())
        .map(|(name, _)| name)
        .collect();
    assert_eq!(missing.len(), 3, "missing: {missing:?}");
    assert!(results["batch/repo-007"].is_err());
    assert!(results["batch/repo-047"].is_err());
    assert!(results["batch/repo-124"].is_ok());
    // 100 names with 3 missing take 4 calls, the other 25 names one.
    let calls = stand_ins.stats().get("DescribeRepositories").copied();
    assert_eq!(calls, Some(5), "stats: {:?}", stand_ins.stats());
}

async fn invalid_names_fail_alone(client: &aws_sdk_ecr::Client, registry: &EcrRegistry) {
    create(client, "valid/name").await;
    let options = RepositoryOptions {
        create: true,
        ..RepositoryOptions::default()
    };
    let requested = names(&["valid/name", "Invalid Name", "bad__name"]);
    let results = ensure_repositories(client, registry, &requested, &options)
        .await
        .unwrap();
    assert!(results["valid/name"].is_ok());
    assert_eq!(
        results["Invalid Name"].as_ref().unwrap_err().error_id,
        "InvalidEcrRepositoryName"
    );
    assert_eq!(
        results["bad__name"].as_ref().unwrap_err().error_id,
        "InvalidEcrRepositoryName"
    );
}

async fn invalid_tag_mutability_rejected(client: &aws_sdk_ecr::Client, registry: &EcrRegistry) {
    let options = RepositoryOptions {
        create: true,
        tag_mutability: Some("SOMETIMES".to_owned()),
        scan_on_push: false,
    };
    let error = ensure_repositories(client, registry, &names(&["any/name"]), &options)
        .await
        .unwrap_err();
    assert_eq!(error.error_id, "InvalidTagMutability");
    assert!(error.message.contains("SOMETIMES"), "{}", error.message);
}
