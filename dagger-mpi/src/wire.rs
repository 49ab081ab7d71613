//! The one message format: a head (which transfer, what type, whether the value failed,
//! the metadata, and the bulk bytes when they are small) followed, for a large value, by
//! its bulk bytes as they are, in pieces of at most [`PIECE`] bytes.

/// Marks a dagger message ("DGMP").
const MAGIC: u32 = 0x444d_4750;
const FAILED: u8 = 1;
const INLINE: u8 = 2;
const CONTROL: u8 = 4;
const HEAD_FIXED: usize = 4 + 8 + 8 + 1 + 4 + 8;

/// Bulk bytes up to this size are copied into the head: one message instead of two.
pub(crate) const INLINE_LIMIT: usize = 64 * 1024;
/// MPI counts are `i32`: a large value goes in pieces of 1 GiB.
pub(crate) const PIECE: usize = 1 << 30;
/// Debug builds take the piece size from this variable, so that tests split small values
/// (every rank must see the same value).
pub(crate) const PIECE_ENV: &str = "DAGGER_MPI_PIECE_BYTES";
/// A head is one MPI message: its metadata must stay well under `i32::MAX` bytes.
pub(crate) const META_LIMIT: usize = 1 << 30;

/// What a head says.
#[derive(Debug, PartialEq)]
pub(crate) struct Head {
    /// The transfer, numbered in program order (the same on every rank).
    pub id: u64,
    /// The value's type ([`type_tag`](crate::transfer::type_tag)).
    pub type_tag: u64,
    /// The sending rank's failure, instead of a value.
    pub failure: Option<String>,
    pub meta: Vec<u8>,
    /// The bulk bytes, when they travelled in the head.
    pub inline_bulk: Option<Vec<u8>>,
    /// How many bulk bytes follow (or travelled inline).
    pub bulk_len: u64,
    /// A record of the sender's program order (`id` is the operation's number, `meta` its
    /// description), not a value.
    pub control: bool,
}

/// The head of a value: `bulk` goes inline when it is small (then the caller sends
/// nothing after the head).
pub(crate) fn value_head(id: u64, type_tag: u64, meta: &[u8], bulk: &[u8]) -> Vec<u8> {
    let inline = bulk.len() <= INLINE_LIMIT;
    let mut out = Vec::with_capacity(HEAD_FIXED + meta.len() + if inline { bulk.len() } else { 0 });
    write_fixed(
        &mut out,
        id,
        type_tag,
        if inline { INLINE } else { 0 },
        meta.len(),
        bulk.len(),
    );
    out.extend_from_slice(meta);
    if inline {
        out.extend_from_slice(bulk);
    }
    out
}

/// The head that tells the receiver the value failed on the sending rank.
pub(crate) fn failure_head(id: u64, type_tag: u64, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_FIXED + message.len());
    write_fixed(&mut out, id, type_tag, FAILED | INLINE, message.len(), 0);
    out.extend_from_slice(message.as_bytes());
    out
}

fn write_fixed(out: &mut Vec<u8>, id: u64, tag: u64, flags: u8, meta: usize, bulk: usize) {
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.push(flags);
    out.extend_from_slice(&(meta as u32).to_le_bytes());
    out.extend_from_slice(&(bulk as u64).to_le_bytes());
}

/// A record of distributed operation number `index` of the sender's program, for the
/// SPMD check (debug builds).
pub(crate) fn record_head(index: u64, description: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_FIXED + description.len());
    write_fixed(&mut out, index, 0, CONTROL | INLINE, description.len(), 0);
    out.extend_from_slice(description.as_bytes());
    out
}

/// Reads a head; a message that is not one is an error that says why.
pub(crate) fn read_head(bytes: &[u8]) -> Result<Head, String> {
    if bytes.len() < HEAD_FIXED {
        return Err(format!(
            "a message of {} bytes is too short to be a dagger message",
            bytes.len()
        ));
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    if u32_at(0) != MAGIC {
        return Err("a message that is not a dagger message (wrong magic number)".to_owned());
    }
    let (id, type_tag, flags) = (u64_at(4), u64_at(12), bytes[20]);
    let (meta_len, bulk_len) = (u32_at(21) as usize, u64_at(25));
    let rest = &bytes[HEAD_FIXED..];
    let inline = flags & INLINE != 0;
    let expected = meta_len as u64 + if inline { bulk_len } else { 0 };
    if rest.len() as u64 != expected {
        return Err(format!(
            "transfer {id}: the head announces {expected} bytes and carries {}",
            rest.len()
        ));
    }
    let (meta, bulk) = rest.split_at(meta_len);
    if flags & FAILED != 0 {
        return Ok(Head {
            id,
            type_tag,
            failure: Some(String::from_utf8_lossy(meta).into_owned()),
            meta: Vec::new(),
            inline_bulk: Some(Vec::new()),
            bulk_len: 0,
            control: false,
        });
    }
    Ok(Head {
        id,
        type_tag,
        failure: None,
        meta: meta.to_vec(),
        inline_bulk: inline.then(|| bulk.to_vec()),
        bulk_len,
        control: flags & CONTROL != 0,
    })
}

/// The pieces (start, end) of `len` bulk bytes.
pub(crate) fn pieces(len: usize) -> impl Iterator<Item = (usize, usize)> {
    let piece = piece();
    (0..len.div_ceil(piece)).map(move |i| (i * piece, ((i + 1) * piece).min(len)))
}

fn piece() -> usize {
    static PIECE_BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PIECE_BYTES.get_or_init(|| {
        let chosen = std::env::var(PIECE_ENV).ok().and_then(|v| v.parse().ok());
        match chosen {
            Some(bytes) if cfg!(debug_assertions) && (1..=PIECE).contains(&bytes) => bytes,
            _ => PIECE,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip() {
        let head = read_head(&value_head(9, 3, b"meta", b"bulk")).unwrap();
        assert_eq!(
            (head.id, head.type_tag, head.meta.as_slice()),
            (9, 3, &b"meta"[..])
        );
        assert_eq!(head.inline_bulk.as_deref(), Some(&b"bulk"[..]));
        let big = vec![7u8; INLINE_LIMIT + 1];
        let head = read_head(&value_head(10, 3, b"", &big)).unwrap();
        assert_eq!((head.inline_bulk, head.bulk_len), (None, big.len() as u64));
        let head = read_head(&failure_head(11, 3, "boom on rank 2")).unwrap();
        assert_eq!(head.failure.as_deref(), Some("boom on rank 2"));
        let head = read_head(&record_head(12, "spawn_on at x.rs:1:1")).unwrap();
        assert!(head.control && head.id == 12 && head.meta == b"spawn_on at x.rs:1:1");
    }

    #[test]
    fn malformed_heads_are_errors() {
        assert!(read_head(b"short").is_err());
        let mut bytes = value_head(1, 2, b"m", b"b");
        bytes[0] ^= 1;
        assert!(read_head(&bytes).unwrap_err().contains("magic"));
        let mut bytes = value_head(1, 2, b"m", b"b");
        bytes.pop();
        assert!(read_head(&bytes).unwrap_err().contains("announces"));
    }

    #[test]
    fn pieces_cover_the_bytes() {
        assert_eq!(pieces(0).count(), 0);
        let piece = piece();
        let p: Vec<_> = pieces(2 * piece + 5).collect();
        assert_eq!(
            p,
            vec![(0, piece), (piece, 2 * piece), (2 * piece, 2 * piece + 5)]
        );
    }
}
