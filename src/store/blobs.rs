//! The audio library's bytes in the database, for central replicas that do not share a
//! disk: every replica serves every file. Content-addressed (a file is named by its
//! sha256 and never changes), kept in chunks of [`CHUNK_BYTES`] so no row, read or
//! write holds a whole programme in memory. Only [`super::PgStore`] implements it: a
//! single central on SQLite keeps its library as files in its data directory.

use std::io::{Read, Write};

use sha2::{Digest, Sha256};

use super::StoreError;

/// One row's worth of audio: large enough that a 50 MB programme is 50 rows, small
/// enough that a row is never a burden on the database or on memory.
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// Where the library's bytes live when central's data directory is not the only copy.
pub trait AudioBlobs: Send + Sync + 'static {
    /// Stores the bytes read from `file` under `sha256`, all or nothing. A sha256 already
    /// held is left as it is (content-addressed: the same name is the same bytes).
    fn put_audio_bytes(&self, sha256: &str, file: &mut (dyn Read + Send))
    -> Result<(), StoreError>;
    /// Writes the bytes held under `sha256` to `out`; `false` when none are held.
    fn read_audio_bytes(
        &self,
        sha256: &str,
        out: &mut (dyn Write + Send),
    ) -> Result<bool, StoreError>;
    /// Whether the bytes of `sha256` are held.
    fn holds_audio(&self, sha256: &str) -> Result<bool, StoreError>;
}

/// Reads `file` in [`CHUNK_BYTES`] pieces, calling `each(index, bytes)`, and returns the
/// sha256 of everything read and the total size: the caller refuses to commit bytes
/// that do not match their name.
pub fn chunked(
    file: &mut dyn Read,
    mut each: impl FnMut(i64, &[u8]) -> Result<(), StoreError>,
) -> Result<(String, u64), StoreError> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK_BYTES];
    let (mut index, mut size) = (0i64, 0u64);
    loop {
        let filled = fill(file, &mut buffer)?;
        if filled == 0 {
            break;
        }
        hasher.update(&buffer[..filled]);
        each(index, &buffer[..filled])?;
        index += 1;
        size += filled as u64;
        if filled < buffer.len() {
            break;
        }
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Reads until `buffer` is full or the file ends; returns how much was read.
fn fill(file: &mut dyn Read, buffer: &mut [u8]) -> Result<usize, StoreError> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StoreError::Corrupt(format!("reading audio to store: {e}"))),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_cut_into_whole_chunks_and_hashed() {
        let bytes: Vec<u8> = (0..CHUNK_BYTES * 2 + 10).map(|i| (i % 251) as u8).collect();
        let mut seen = Vec::new();
        let (sha, size) = chunked(&mut bytes.as_slice(), |i, chunk| {
            seen.push((i, chunk.len()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(0, CHUNK_BYTES), (1, CHUNK_BYTES), (2, 10)]);
        assert_eq!(size, bytes.len() as u64);
        assert_eq!(sha, hex::encode(Sha256::digest(&bytes)));
        let (_, empty) = chunked(&mut [].as_slice(), |_, _| panic!("no chunk")).unwrap();
        assert_eq!(empty, 0);
    }
}
