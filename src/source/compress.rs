//! Gzip compression of uncompressed layers while they stream to the registry.
//!
//! A layer is cut into 512 KiB pieces that are deflated on several cores at
//! once, as pigz does. Each piece is primed with the 32 KiB before it and
//! ends with a sync flush, so the pieces join into one deflate stream. The
//! output depends only on the layer's bytes, not on the number of cores or
//! on thread timing.
//!
//! Inside a piece, each 64 KiB block is judged by its byte entropy first.
//! Blocks that look random, such as already compressed files or encrypted
//! data, go into the stream as stored blocks, which costs only a copy. The
//! others are compressed at [`GZIP_LEVEL`]. Deflating random bytes at level
//! 6 runs at about 50 MiB/s per core and gains nothing.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use bytes::Bytes;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::digest::{StreamDigest, short_digest};
use super::{BlobReader, file_error};
use crate::error::{Error, Result};

/// Gzip level of blocks that compress: 6 is the default of Go's
/// `compress/gzip`, which the docker engine uses for `docker push`.
const GZIP_LEVEL: u32 = 6;
/// Deflate level 0 writes stored blocks: the bytes as they are, framed.
const STORED_LEVEL: u32 = 0;
/// Uncompressed bytes deflated by one thread at a time.
const PIECE_SIZE: usize = 512 * 1024;
/// Pieces of one layer deflated at once, at most. Several layers of a push
/// compress at the same time too, so more threads than this gain little.
const MAX_PARALLEL_PIECES: usize = 4;
/// Deflate window: the bytes before a piece that it may refer back to.
const WINDOW_SIZE: usize = 32 * 1024;
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
/// Gzip member header (RFC 1952): deflate, no flags, no modification
/// time, no extra flags, unknown operating system. A fixed header keeps
/// the output of the same layer identical between pushes.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

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
/// layer's bytes do not match its diff id. So a corrupt layer never
/// completes an upload. The threads stop when `cancel` fires or when the
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

    let parallel = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_PARALLEL_PIECES);
    let mut uncompressed = StreamDigest::like(&layer.diff_id)?;
    let mut crc = Crc::new();
    let mut round = vec![0u8; parallel * PIECE_SIZE];
    let mut window = Vec::with_capacity(WINDOW_SIZE);
    if sender
        .blocking_send(Ok(Bytes::from_static(&GZIP_HEADER)))
        .is_err()
    {
        return Ok(());
    }
    let last_pieces = loop {
        if cancel.is_cancelled() || sender.is_closed() {
            return Ok(());
        }
        let read = read_full(&mut input, &mut round).map_err(read_error)?;
        let last = uncompressed.length() + read as u64 == layer.length;
        if read == 0 && !last {
            break Vec::new();
        }
        let data = &round[..read];
        let pieces = deflate_round(data, &window, last, |data| {
            uncompressed.update(data);
            crc.update(data);
        })?;
        if last {
            break pieces;
        }
        window.clear();
        window.extend_from_slice(&data[data.len().saturating_sub(WINDOW_SIZE)..]);
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
    // The last round is sent only now, with the trailer: the gzip stream of
    // a layer whose digest does not match never ends.
    let mut trailer = Vec::with_capacity(8);
    trailer.extend_from_slice(&crc.sum().to_le_bytes());
    // The trailer contains the uncompressed length modulo 2^32.
    trailer.extend_from_slice(&crc.amount().to_le_bytes());
    for chunk in last_pieces.into_iter().chain(std::iter::once(trailer)) {
        if sender.blocking_send(Ok(Bytes::from(chunk))).is_err() {
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

/// Deflates `data` as pieces of [`PIECE_SIZE`], one thread per piece, and
/// returns their output in order. `window` contains the bytes before
/// `data`; `last` ends the deflate stream after the last piece. `inspect`
/// runs on the calling thread meanwhile, with all of `data`.
fn deflate_round(
    data: &[u8],
    window: &[u8],
    last: bool,
    inspect: impl FnOnce(&[u8]),
) -> Result<Vec<Vec<u8>>> {
    if data.is_empty() {
        // Only an empty layer ends with an empty round: its stream is one
        // empty final block.
        inspect(data);
        let writer = PieceWriter::new(GZIP_LEVEL, window, 0)?;
        return Ok(vec![writer.finish(FlushCompress::Finish)?]);
    }
    let count = data.len().div_ceil(PIECE_SIZE);
    std::thread::scope(|scope| {
        let workers: Vec<_> = data
            .chunks(PIECE_SIZE)
            .enumerate()
            .map(|(index, piece)| {
                let start = index * PIECE_SIZE;
                let dictionary = if index == 0 {
                    window
                } else {
                    &data[start.saturating_sub(WINDOW_SIZE)..start]
                };
                let final_piece = last && index + 1 == count;
                scope.spawn(move || deflate_piece(piece, dictionary, final_piece))
            })
            .collect();
        inspect(data);
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| Err(Error::internal("A gzip thread panicked.")))
            })
            .collect()
    })
}

/// Deflates one piece, primed with `dictionary`, and ends it with a sync
/// flush, or with the end of the stream when `last`.
fn deflate_piece(piece: &[u8], dictionary: &[u8], last: bool) -> Result<Vec<u8>> {
    let mut blocks = piece.chunks(BLOCK_SIZE).peekable();
    let first_level = blocks
        .peek()
        .map_or(GZIP_LEVEL, |block| block_level(block, GZIP_LEVEL));
    let mut writer = PieceWriter::new(first_level, dictionary, piece.len())?;
    for block in blocks {
        writer.write_block(block)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    writer.finish(flush)
}

/// Returns the deflate level for a block: stored when its bytes look
/// random, else [`GZIP_LEVEL`]; `current` for blocks too short to judge.
fn block_level(block: &[u8], current: u32) -> u32 {
    if block.len() < MIN_JUDGED_BLOCK_SIZE {
        current
    } else if byte_entropy(block) >= STORED_MIN_ENTROPY {
        STORED_LEVEL
    } else {
        GZIP_LEVEL
    }
}

/// The deflate output of one piece, written block by block, each block at
/// the level its content calls for.
struct PieceWriter {
    deflate: Compress,
    level: u32,
    output: Vec<u8>,
}

impl PieceWriter {
    fn new(level: u32, dictionary: &[u8], length: usize) -> Result<PieceWriter> {
        // false: raw deflate, framed by the gzip header and trailer above.
        let mut deflate = Compress::new(Compression::new(level), false);
        if !dictionary.is_empty() {
            deflate
                .set_dictionary(dictionary)
                .map_err(|error| compress_error(&error))?;
        }
        Ok(PieceWriter {
            deflate,
            level,
            // Stored blocks of up to 64 KiB add 5 bytes each, and compressed
            // ones are smaller. `deflate` grows the buffer if it is short.
            output: Vec::with_capacity(length + length / 1024 + 64),
        })
    }

    fn write_block(&mut self, block: &[u8]) -> Result<()> {
        let level = block_level(block, self.level);
        if level != self.level {
            // The level may change only where a deflate block ends.
            self.deflate(&[], FlushCompress::Sync)?;
            self.deflate
                .set_level(Compression::new(level))
                .map_err(|error| compress_error(&error))?;
            self.level = level;
        }
        self.deflate(block, FlushCompress::None)
    }

    fn finish(mut self, flush: FlushCompress) -> Result<Vec<u8>> {
        self.deflate(&[], flush)?;
        // The piece may wait in the channel: it keeps only what it uses.
        self.output.shrink_to_fit();
        Ok(self.output)
    }

    /// Feeds `input` to the compressor, growing the output until the
    /// compressor has taken all input and, for a flush, written all output.
    fn deflate(&mut self, mut input: &[u8], flush: FlushCompress) -> Result<()> {
        loop {
            if self.output.capacity() - self.output.len() < WINDOW_SIZE {
                self.output.reserve(input.len() + WINDOW_SIZE);
            }
            let consumed_before = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(input, &mut self.output, flush)
                .map_err(|error| compress_error(&error))?;
            let consumed = (self.deflate.total_in() - consumed_before) as usize;
            input = &input[consumed..];
            let output_full = self.output.len() == self.output.capacity();
            let finished = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                _ => input.is_empty() && !output_full,
            };
            if finished {
                return Ok(());
            }
        }
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

fn compress_error(error: &dyn std::fmt::Display) -> Error {
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
    use std::io::{Read, Write};

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
        let content = vec![7u8; 3 * PIECE_SIZE + 11];
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
        flate2::read::GzDecoder::new(compressed)
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
        let (_file, layer) = layer_file(&content);
        let compressed = collect(gzip_layer(layer, CancellationToken::new()))
            .await
            .unwrap();
        assert_eq!(gunzip(&compressed), content);
    }

    #[tokio::test]
    async fn gzip_stores_random_bytes() {
        let content = random_bytes(4 * PIECE_SIZE, 3);
        let (_file, layer) = layer_file(&content);
        let compressed = collect(gzip_layer(layer, CancellationToken::new()))
            .await
            .unwrap();
        // Stored blocks of up to 64 KiB add 5 bytes each, and so does the
        // sync flush at the end of each piece.
        assert!(compressed.len() <= content.len() + content.len() / 1000 + 64);
        assert_eq!(gunzip(&compressed), content);
    }

    #[tokio::test]
    async fn gzip_compresses_text() {
        let content = text_bytes(4 * PIECE_SIZE);
        let (_file, layer) = layer_file(&content);
        let compressed = collect(gzip_layer(layer, CancellationToken::new()))
            .await
            .unwrap();
        assert!(compressed.len() < content.len() / 20);
    }

    #[tokio::test]
    async fn gzip_empty_layer() {
        let (_file, layer) = layer_file(b"");
        let compressed = collect(gzip_layer(layer, CancellationToken::new()))
            .await
            .unwrap();
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
