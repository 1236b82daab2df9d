//! Gzip compression of uncompressed layers while they stream to the registry.
//!
//! A layer is cut into 512 KiB pieces that are compressed on several cores
//! at once with libdeflate, which on layer text runs about twice as fast as
//! zlib at level 6 and stores fewer bytes (`docs/benchmarks.md`).
//! libdeflate compresses whole buffers only, so each piece becomes its own
//! gzip member, and the blob is the members one after another. RFC 1952
//! defines such a file as the concatenation of its members' data, and the
//! readers that pull images (Go's `compress/gzip`, pigz, zlib's `gzread`)
//! read every member, as they do for eStargz layers. The output depends
//! only on the layer's bytes and the level, not on the number of cores or
//! on thread timing.
//!
//! Inside a piece, each 64 KiB block is judged by its byte entropy first.
//! Runs of blocks that look random, such as already compressed files or
//! encrypted data, become members of stored blocks, which costs only a
//! copy. The other runs are compressed at the push's gzip level.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use bytes::Bytes;
use libdeflater::{CompressionLvl, Compressor};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::digest::{StreamDigest, short_digest};
use super::{BlobReader, file_error};
use crate::error::{Error, Result};

/// Gzip level of blocks that compress, by default. On text, libdeflate at
/// level 4 stores slightly fewer bytes than zlib at level 6 (the default of
/// Go's `compress/gzip`, which `docker push` uses) at twice the speed.
pub const DEFAULT_GZIP_LEVEL: u8 = 4;
/// Highest gzip level: libdeflate goes beyond zlib's 9.
pub const MAX_GZIP_LEVEL: u8 = 12;
/// Uncompressed bytes compressed by one thread at a time.
const PIECE_SIZE: usize = 512 * 1024;
/// Pieces of one layer compressed at once, at most. Several layers of a
/// push compress at the same time too, so more threads than this gain little.
const MAX_PARALLEL_PIECES: usize = 4;
/// Uncompressed bytes judged at once.
const BLOCK_SIZE: usize = 64 * 1024;
/// Shorter blocks (the end of a layer) keep the previous level, because
/// the entropy of a few bytes is a poor estimate.
const MIN_JUDGED_BLOCK_SIZE: usize = 4 * 1024;
/// Byte entropy, in bits per byte, from which a block is stored. At 7.9
/// bits a code per byte such as Huffman's saves at most 1.25 %. Random
/// bytes measure about 7.997 over 64 KiB.
const STORED_MIN_ENTROPY: f64 = 7.9;
/// Compressed pieces that may wait for the uploader: the compressor runs
/// at most about one round of pieces ahead.
const CHANNEL_CAPACITY: usize = 2;

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

/// Starts compressing a layer at gzip `level` in a blocking thread and
/// returns the gzip stream. The stream ends with an error, before its last
/// members, when the layer's bytes do not match its diff id, so a corrupt
/// layer never completes an upload. The threads stop when `cancel` fires
/// or when the stream is dropped.
pub(crate) fn gzip_layer(
    layer: UncompressedLayer,
    level: u8,
    cancel: CancellationToken,
) -> BlobReader {
    let (sender, receiver) = mpsc::channel::<Result<Bytes>>(CHANNEL_CAPACITY);
    let level = level.clamp(1, MAX_GZIP_LEVEL);
    tokio::task::spawn_blocking(move || {
        // A panic must end the stream with an error: a stream that just
        // stops would pass for a complete blob of fewer members.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            compress_into(&layer, level, &sender, &cancel)
        }))
        .unwrap_or_else(|_| Err(Error::internal("Gzip compression of a layer panicked.")));
        if let Err(error) = outcome {
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
    level: u8,
    sender: &mpsc::Sender<Result<Bytes>>,
    cancel: &CancellationToken,
) -> Result<()> {
    let read_error = |error: std::io::Error| file_error(&layer.path, "read", &error);
    let mut file =
        File::open(&layer.path).map_err(|error| file_error(&layer.path, "open", &error))?;
    file.seek(SeekFrom::Start(layer.offset))
        .map_err(read_error)?;
    let mut input = file.take(layer.length);

    // A small layer needs fewer threads; the output does not change,
    // because the pieces are always the same size.
    let pieces = usize::try_from(layer.length.div_ceil(PIECE_SIZE as u64)).unwrap_or(usize::MAX);
    let parallel = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_PARALLEL_PIECES)
        .min(pieces.max(1));
    let mut uncompressed = StreamDigest::like(&layer.diff_id)?;
    let mut round = vec![0u8; parallel * PIECE_SIZE];
    let mut workers: Vec<PieceCompressor> = (0..parallel)
        .map(|_| PieceCompressor::new(level))
        .collect::<Result<_>>()?;
    let last_pieces = loop {
        if cancel.is_cancelled() {
            return Err(Error::cancelled());
        }
        if sender.is_closed() {
            return Ok(());
        }
        let read = read_full(&mut input, &mut round).map_err(read_error)?;
        let data = &round[..read];
        let pieces = compress_round(data, &mut workers, |data| uncompressed.update(data))?;
        if read < round.len() || uncompressed.length() == layer.length {
            break pieces;
        }
        for piece in pieces {
            if sender.blocking_send(Ok(Bytes::from(piece))).is_err() {
                return Ok(());
            }
        }
    };

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
    // The last round is sent only now: the gzip stream of a layer whose
    // digest does not match never ends.
    for piece in last_pieces {
        if sender.blocking_send(Ok(Bytes::from(piece))).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Reads until `buffer` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Compresses `data` as pieces of [`PIECE_SIZE`], one thread and one of
/// `workers` per piece, and returns their gzip members in order. `inspect`
/// runs on the calling thread meanwhile, with all of `data`.
fn compress_round(
    data: &[u8],
    workers: &mut [PieceCompressor],
    inspect: impl FnOnce(&[u8]),
) -> Result<Vec<Vec<u8>>> {
    if data.is_empty() {
        // Only an empty layer ends with an empty round: its stream is one
        // member with no data.
        inspect(data);
        let mut member = Vec::new();
        workers[0].member(data, true, &mut member)?;
        return Ok(vec![member]);
    }
    std::thread::scope(|scope| {
        let threads: Vec<_> = data
            .chunks(PIECE_SIZE)
            .zip(workers.iter_mut())
            .map(|(piece, worker)| {
                std::thread::Builder::new()
                    .name("ecr-compose-gzip".to_owned())
                    .spawn_scoped(scope, move || worker.compress_piece(piece))
            })
            .collect();
        inspect(data);
        threads
            .into_iter()
            .map(|thread| match thread {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|_| Err(Error::internal("A gzip thread panicked."))),
                Err(error) => Err(Error::internal(format!(
                    "Could not start a gzip thread: {error}."
                ))),
            })
            .collect()
    })
}

/// The state of one compressing thread, kept from round to round: fresh
/// compressors and buffers would cost a page fault per 4 KiB each time.
struct PieceCompressor {
    deflate: Compressor,
    stored: Compressor,
    buffer: Vec<u8>,
}

impl PieceCompressor {
    fn new(level: u8) -> Result<PieceCompressor> {
        let level = CompressionLvl::new(i32::from(level))
            .map_err(|_| Error::internal(format!("The gzip level {level} is out of range.")))?;
        let mut deflate = Compressor::new(level);
        let buffer = vec![0u8; deflate.gzip_compress_bound(PIECE_SIZE)];
        Ok(PieceCompressor {
            deflate,
            stored: Compressor::new(CompressionLvl::fastest()),
            buffer,
        })
    }

    /// Compresses one piece into gzip members: one per run of blocks that
    /// are all stored or all compressed.
    fn compress_piece(&mut self, piece: &[u8]) -> Result<Vec<u8>> {
        let mut output = Vec::new();
        let mut run_start = 0;
        let mut run_stored = None;
        for (index, block) in piece.chunks(BLOCK_SIZE).enumerate() {
            let stored = match run_stored {
                Some(current) if block.len() < MIN_JUDGED_BLOCK_SIZE => current,
                _ => byte_entropy(block) >= STORED_MIN_ENTROPY,
            };
            let start = index * BLOCK_SIZE;
            if let Some(current) = run_stored.filter(|&current| current != stored) {
                self.member(&piece[run_start..start], current, &mut output)?;
                run_start = start;
            }
            run_stored = Some(stored);
        }
        self.member(
            &piece[run_start..],
            run_stored.unwrap_or(false),
            &mut output,
        )?;
        Ok(output)
    }

    /// Appends one gzip member of `data`, stored or compressed, to `output`.
    /// libdeflate writes a fixed header (no name, no modification time), so
    /// the same bytes always give the same member.
    fn member(&mut self, data: &[u8], stored: bool, output: &mut Vec<u8>) -> Result<()> {
        let compressor = if stored {
            &mut self.stored
        } else {
            &mut self.deflate
        };
        let bound = compressor.gzip_compress_bound(data.len());
        if self.buffer.len() < bound {
            self.buffer.resize(bound, 0);
        }
        let length = compressor
            .gzip_compress(data, &mut self.buffer)
            .map_err(|error| {
                Error::internal(format!("Gzip compression of a layer failed: {error}."))
            })?;
        output.extend_from_slice(&self.buffer[..length]);
        Ok(())
    }
}

/// Returns the Shannon entropy of the byte values of `block`, in bits per
/// byte: 8 for uniformly random bytes, about 4.5 for English text.
fn byte_entropy(block: &[u8]) -> f64 {
    // Four tables, so that runs of one byte value do not stall on a
    // single counter.
    let mut counts = [[0u32; 256]; 4];
    let mut quads = block.chunks_exact(4);
    for quad in &mut quads {
        counts[0][quad[0] as usize] += 1;
        counts[1][quad[1] as usize] += 1;
        counts[2][quad[2] as usize] += 1;
        counts[3][quad[3] as usize] += 1;
    }
    for &byte in quads.remainder() {
        counts[0][byte as usize] += 1;
    }
    let total = block.len() as f64;
    let mut entropy = 0.0;
    for (value, first) in counts[0].iter().enumerate() {
        let count = first + counts[1][value] + counts[2][value] + counts[3][value];
        if count > 0 {
            let share = f64::from(count) / total;
            entropy -= share * share.log2();
        }
    }
    entropy
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
    use std::io::{Read, Write};

    use futures_util::TryStreamExt;

    use super::super::digest::sha256_digest;
    use super::*;

    async fn collect(reader: BlobReader) -> Result<Vec<u8>> {
        let chunks: Vec<Bytes> = reader.stream.try_collect().await?;
        Ok(chunks.concat())
    }

    /// Compresses `content`, stored in a file of its own, at `level`.
    async fn gzip_at(content: &[u8], level: u8) -> Vec<u8> {
        let (_file, layer) = layer_file(content);
        collect(gzip_layer(layer, level, CancellationToken::new()))
            .await
            .unwrap()
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
        let content = vec![7u8; 3 * PIECE_SIZE + 11];
        let compressed = gzip_at(&content, DEFAULT_GZIP_LEVEL).await;
        let mut decoded = Vec::new();
        flate2::read::MultiGzDecoder::new(&compressed[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, content);
    }

    /// Returns bytes from xorshift64, which look random to gzip.
    fn random_bytes(length: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        let mut bytes = Vec::with_capacity(length + 8);
        while bytes.len() < length {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.extend_from_slice(&state.to_le_bytes());
        }
        bytes.truncate(length);
        bytes
    }

    fn text_bytes(length: usize) -> Vec<u8> {
        let line = b"the quick brown fox jumps over the lazy dog, again and again\n";
        line.iter().copied().cycle().take(length).collect()
    }

    fn gunzip(compressed: &[u8]) -> Vec<u8> {
        let mut decoded = Vec::new();
        flate2::read::MultiGzDecoder::new(compressed)
            .read_to_end(&mut decoded)
            .unwrap();
        decoded
    }

    #[tokio::test]
    async fn gzip_mixed_round_trip() {
        let mut content = text_bytes(3 * BLOCK_SIZE + 100);
        content.extend(random_bytes(5 * BLOCK_SIZE + 7, 1));
        content.extend(text_bytes(2 * BLOCK_SIZE));
        content.extend(random_bytes(MIN_JUDGED_BLOCK_SIZE - 1, 2));
        let compressed = gzip_at(&content, DEFAULT_GZIP_LEVEL).await;
        assert_eq!(gunzip(&compressed), content);
    }

    #[tokio::test]
    async fn gzip_stores_random_bytes() {
        let content = random_bytes(4 * PIECE_SIZE, 3);
        let compressed = gzip_at(&content, DEFAULT_GZIP_LEVEL).await;
        // Stored blocks of up to 65535 bytes add 5 bytes each, and each
        // piece's gzip member adds an 18-byte header and trailer.
        assert!(compressed.len() <= content.len() + content.len() / 1000 + 64);
        assert_eq!(gunzip(&compressed), content);
    }

    #[tokio::test]
    async fn gzip_compresses_text() {
        let content = text_bytes(4 * PIECE_SIZE);
        let compressed = gzip_at(&content, DEFAULT_GZIP_LEVEL).await;
        assert!(compressed.len() < content.len() / 20);
    }

    #[tokio::test]
    async fn gzip_levels_round_trip() {
        let mut content = text_bytes(PIECE_SIZE + 5);
        content.extend(random_bytes(BLOCK_SIZE, 5));
        let mut sizes = Vec::new();
        for level in [1, MAX_GZIP_LEVEL] {
            let compressed = gzip_at(&content, level).await;
            assert_eq!(gunzip(&compressed), content, "level {level}");
            sizes.push(compressed.len());
        }
        assert!(
            sizes[1] <= sizes[0],
            "level 12 stores no more than level 1: {sizes:?}"
        );
    }

    #[tokio::test]
    async fn gzip_cancelled_ends_with_error() {
        let content = text_bytes(8 * PIECE_SIZE);
        let (_file, layer) = layer_file(&content);
        let cancel = CancellationToken::new();
        cancel.cancel();
        let error = collect(gzip_layer(layer, DEFAULT_GZIP_LEVEL, cancel))
            .await
            .unwrap_err();
        assert_eq!(error.status, crate::error::EcrStatus::Cancelled);
    }

    #[tokio::test]
    async fn gzip_empty_layer() {
        let compressed = gzip_at(b"", DEFAULT_GZIP_LEVEL).await;
        assert!(gunzip(&compressed).is_empty());
    }

    #[test]
    fn entropy_of_random_bytes_is_high() {
        assert!(byte_entropy(&random_bytes(BLOCK_SIZE, 4)) >= STORED_MIN_ENTROPY);
    }

    #[test]
    fn entropy_of_text_is_low() {
        assert!(byte_entropy(&text_bytes(BLOCK_SIZE)) < 5.0);
    }

    #[test]
    fn entropy_of_one_value_is_zero() {
        assert_eq!(byte_entropy(&[7u8; 4096]), 0.0);
    }

    #[tokio::test]
    async fn gzip_is_deterministic() {
        let content = b"same bytes, same output".repeat(1000);
        let first = gzip_at(&content, DEFAULT_GZIP_LEVEL).await;
        let second = gzip_at(&content, DEFAULT_GZIP_LEVEL).await;
        assert_eq!(first, second);
    }

    #[tokio::test]
    async fn gzip_rejects_wrong_diff_id() {
        let (_file, mut layer) = layer_file(b"content");
        layer.diff_id = sha256_digest(b"other");
        let error = collect(gzip_layer(
            layer,
            DEFAULT_GZIP_LEVEL,
            CancellationToken::new(),
        ))
        .await
        .unwrap_err();
        assert_eq!(error.error_id, "LayerDigestMismatch");
    }

    #[tokio::test]
    async fn gzip_rejects_truncated_file() {
        let (_file, mut layer) = layer_file(b"content");
        layer.length += 10;
        let error = collect(gzip_layer(
            layer,
            DEFAULT_GZIP_LEVEL,
            CancellationToken::new(),
        ))
        .await
        .unwrap_err();
        assert_eq!(error.error_id, "LayerDigestMismatch");
    }
}
