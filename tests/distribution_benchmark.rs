//! Timings of the push engine against Debian's docker-registry on this
//! machine. Ignored by default; `scripts/benchmark.sh` runs it in release
//! mode and prints a Markdown table for `docs/benchmarks.md`.

mod distribution_support;
mod support;

use std::path::Path;
use std::time::Instant;

use distribution_support::images::{
    OciLayout, docker_archive, layer_tar, random_bytes, text_bytes,
};
use distribution_support::target;
use ecr_compose::distribution::{PushOptions, push};
use ecr_compose::source::{self, DigestCache, ImageSource, SourceOptions, SourceSpec};
use futures_util::TryStreamExt;
use support::StandIns;
use tokio_util::sync::CancellationToken;

const MIB: usize = 1024 * 1024;

fn row(case: &str, bytes: u64, seconds: f64) {
    let mib = bytes as f64 / MIB as f64;
    println!(
        "| {case} | {mib:.0} MiB | {seconds:.2} s | {:.0} MiB/s |",
        mib / seconds
    );
}

async fn open_archive(path: &Path, cache_dir: &Path) -> Box<dyn ImageSource> {
    let spec = SourceSpec::DockerArchive {
        path: path.to_path_buf(),
        image: None,
    };
    let options = SourceOptions {
        cache: DigestCache::in_dir(cache_dir),
        spool_dir: None,
        ..SourceOptions::default()
    };
    source::open_with(&spec, &options, &CancellationToken::new())
        .await
        .unwrap()
}

async fn open_layout(dir: &Path) -> Box<dyn ImageSource> {
    let spec = SourceSpec::OciLayout {
        path: dir.to_path_buf(),
        reference: None,
    };
    source::open(&spec, &CancellationToken::new())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run scripts/benchmark.sh"]
async fn push_engine_timings() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();

    // Docker archive: 64 MiB of text and 64 MiB of random bytes, uncompressed.
    let archive = dir.path().join("image.tar");
    let layers = vec![
        layer_tar(&[("text", &text_bytes(64 * MIB))]),
        layer_tar(&[("random", &random_bytes(64 * MIB))]),
    ];
    let archive_bytes: u64 = layers.iter().map(|layer| layer.len() as u64).sum();
    docker_archive(&archive, "bench/archive:1", &layers);
    drop(layers);

    println!("| case | input | time | rate |");
    println!("| --- | --- | --- | --- |");

    let source = open_archive(&archive, &dir.path().join("cache-gzip")).await;
    let plan = source.plan(&cancel).await.unwrap();
    for (blob, name) in plan
        .blobs
        .iter()
        .skip(1)
        .zip(["text layer", "random layer"])
    {
        let started = Instant::now();
        let reader = source.open_blob(blob, &cancel).await.unwrap();
        let chunks: Vec<bytes::Bytes> = reader.stream.try_collect().await.unwrap();
        let compressed: usize = chunks.iter().map(bytes::Bytes::len).sum();
        let seconds = started.elapsed().as_secs_f64();
        row(
            &format!(
                "gzip only, {name} (to {:.0}%)",
                compressed as f64 * 100.0 / blob.estimated_size as f64
            ),
            blob.estimated_size,
            seconds,
        );
    }

    let cache_dir = dir.path().join("cache");
    let archive_target = target(registry, &registry.host, "bench/archive", Some("1"));
    for (case, repeat) in [
        ("docker archive, first push (gzip + upload)", false),
        ("docker archive, second push (digest cache)", true),
    ] {
        let source = open_archive(&archive, &cache_dir).await;
        let started = Instant::now();
        let outcome = push(
            source.as_ref(),
            &archive_target,
            &PushOptions::default(),
            &|_| {},
            &cancel,
        )
        .await
        .unwrap();
        row(case, archive_bytes, started.elapsed().as_secs_f64());
        assert_eq!(outcome.blobs_uploaded == 0, repeat);
    }

    // OCI layout: four uncompressed 64 MiB layers, pushed as they are.
    let layout_dir = dir.path().join("layout");
    let layout = OciLayout::create(&layout_dir);
    let layers: Vec<Vec<u8>> = (0..4).map(|_| random_bytes(64 * MIB)).collect();
    let layout_bytes: u64 = layers.iter().map(|layer| layer.len() as u64).sum();
    let image = layout.raw_image(&layers);
    layout.finish(&[("1", image)]);
    drop(layers);
    let source = open_layout(&layout_dir).await;
    for (concurrency, chunk_mib) in [(1usize, 8u64), (4, 8), (4, 32)] {
        let repository = format!("bench/oci-{concurrency}-{chunk_mib}");
        let options = PushOptions {
            max_concurrent_uploads: concurrency,
            chunk_size: chunk_mib * MIB as u64,
            ..PushOptions::default()
        };
        let started = Instant::now();
        push(
            source.as_ref(),
            &target(registry, &registry.host, &repository, Some("1")),
            &options,
            &|_| {},
            &cancel,
        )
        .await
        .unwrap();
        row(
            &format!("OCI layout, {concurrency} upload(s), {chunk_mib} MiB parts"),
            layout_bytes,
            started.elapsed().as_secs_f64(),
        );
    }
}
