//! Gzip compression of uncompressed layers while they stream to the registry.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use bytes::Bytes;
use flate2::{Compression, GzBuilder};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::digest::{StreamDigest, short_digest};
use super::{BlobReader, file_error};
use crate::error::{Error, Result};

/// Gzip level: 6 is the default of Go's `compress/gzip`, which the docker
/// engine uses for `docker push`.
const GZIP_LEVEL: u32 = 6;
/// Uncompressed bytes read per step.
const INPUT_BUFFER_SIZE: usize = 256 * 1024;
/// Compressed bytes gathered before they are sent on.
const OUTPUT_CHUNK_SIZE: usize = 128 * 1024;
/// Compressed chunks that may wait for the uploader: with 128 KiB chunks
/// the compressor runs at most about 1 MiB ahead.
const CHANNEL_CAPACITY: usize = 8;

/// A stored uncompressed layer: a byte range of a file and its digest.
pub(crate) struct UncompressedLayer {
    /// File that contains the layer.
    pub path: PathBuf,
    /// Offset of the layer in the file.
    pub offset: u64,
    /// Length of the layer in bytes.
    pub length: u64,
    /// Digest of the uncompressed bytes (the diff id).
    pub diff_id: String,
}

/// Starts compressing a layer in a blocking thread and returns the gzip
/// stream. The stream ends with an error, before the gzip trailer, when the
/// layer's bytes do not match its diff id; so a corrupt layer never
/// completes an upload. The thread stops when `cancel` fires or when the
/// stream is dropped.
pub(crate) fn gzip_layer(layer: UncompressedLayer, cancel: CancellationToken) -> BlobReader {
    let (sender, receiver) = mpsc::channel::<Result<Bytes>>(CHANNEL_CAPACITY);
    tokio::task::spawn_blocking(move || {
        if let Err(error) = compress_into(&layer, &sender, &cancel) {
            let _ = sender.blocking_send(Err(error));
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    BlobReader {
        size: None,
        stream: Box::pin(stream),
    }
}

fn compress_into(
    layer: &UncompressedLayer,
    sender: &mpsc::Sender<Result<Bytes>>,
    cancel: &CancellationToken,
) -> Result<()> {
    let read_error = |error: std::io::Error| file_error(&layer.path, "read", &error);
    let mut file =
        File::open(&layer.path).map_err(|error| file_error(&layer.path, "open", &error))?;
    file.seek(SeekFrom::Start(layer.offset))
        .map_err(read_error)?;
    let mut input = file.take(layer.length);

    let mut uncompressed = StreamDigest::like(&layer.diff_id)?;
    let mut encoder = GzBuilder::new().mtime(0).write(
        Vec::with_capacity(OUTPUT_CHUNK_SIZE * 2),
        Compression::new(GZIP_LEVEL),
    );
    let mut buffer = vec![0u8; INPUT_BUFFER_SIZE];
    loop {
        if cancel.is_cancelled() || sender.is_closed() {
            return Ok(());
        }
        let read = input.read(&mut buffer).map_err(read_error)?;
        if read == 0 {
            break;
        }
        uncompressed.update(&buffer[..read]);
        encoder.write_all(&buffer[..read]).map_err(compress_error)?;
        let output = encoder.get_mut();
        if output.len() >= OUTPUT_CHUNK_SIZE {
            let chunk = Bytes::from(std::mem::take(output));
            if sender.blocking_send(Ok(chunk)).is_err() {
                return Ok(());
            }
        }
    }

    if uncompressed.length() != layer.length {
        return Err(corrupt_layer(
            layer,
            &format!(
                "it ends after {} of {} bytes",
                uncompressed.length(),
                layer.length
            ),
        ));
    }
    let actual = uncompressed.finish();
    if actual != layer.diff_id {
        return Err(corrupt_layer(
            layer,
            &format!("its content has the digest {}", short_digest(&actual)),
        ));
    }
    let rest = encoder.finish().map_err(compress_error)?;
    if !rest.is_empty() {
        let _ = sender.blocking_send(Ok(Bytes::from(rest)));
    }
    Ok(())
}

fn compress_error(error: std::io::Error) -> Error {
    Error::internal(format!("Gzip compression of a layer failed: {error}."))
}

fn corrupt_layer(layer: &UncompressedLayer, problem: &str) -> Error {
    Error::invalid(
        "LayerDigestMismatch",
        format!(
            "The layer {} in {} is corrupt: {problem}. Export or save the image again.",
            short_digest(&layer.diff_id),
            layer.path.display()
        ),
    )
    .with_target(layer.diff_id.clone())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use futures_util::TryStreamExt;

    use super::super::digest::sha256_digest;
    use super::*;

    async fn collect(reader: BlobReader) -> Result<Vec<u8>> {
        let chunks: Vec<Bytes> = reader.stream.try_collect().await?;
        Ok(chunks.concat())
    }

    fn layer_file(content: &[u8]) -> (tempfile::NamedTempFile, UncompressedLayer) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"prefix").unwrap();
        file.write_all(content).unwrap();
        let layer = UncompressedLayer {
            path: file.path().to_path_buf(),
            offset: 6,
            length: content.len() as u64,
            diff_id: sha256_digest(content),
        };
        (file, layer)
    }

    #[tokio::test]
    async fn gzip_round_trip() {
        let content = vec![7u8; 3 * INPUT_BUFFER_SIZE + 11];
        let (_file, layer) = layer_file(&content);
        let compressed = collect(gzip_layer(layer, CancellationToken::new()))
            .await
            .unwrap();
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, content);
    }

    #[tokio::test]
    async fn gzip_is_deterministic() {
        let content = b"same bytes, same output".repeat(1000);
        let (_file, layer) = layer_file(&content);
        let (_again, same_layer) = layer_file(&content);
        let first = collect(gzip_layer(layer, CancellationToken::new()))
            .await
            .unwrap();
        let second = collect(gzip_layer(same_layer, CancellationToken::new()))
            .await
            .unwrap();
        assert_eq!(first, second);
    }

    #[tokio::test]
    async fn gzip_rejects_wrong_diff_id() {
        let (_file, mut layer) = layer_file(b"content");
        layer.diff_id = sha256_digest(b"other");
        let error = collect(gzip_layer(layer, CancellationToken::new()))
            .await
            .unwrap_err();
        assert_eq!(error.error_id, "LayerDigestMismatch");
    }

    #[tokio::test]
    async fn gzip_rejects_truncated_file() {
        let (_file, mut layer) = layer_file(b"content");
        layer.length += 10;
        let error = collect(gzip_layer(layer, CancellationToken::new()))
            .await
            .unwrap_err();
        assert_eq!(error.error_id, "LayerDigestMismatch");
    }
}
