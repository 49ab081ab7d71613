//! What moves between ranks: the [`Transfer`] trait. Plain-old-data goes as raw bytes,
//! borrowed from the value on the sending side (no copy); other values go through serde
//! and postcard ([`Serde`]).

use std::borrow::Cow;

use bytemuck::Pod;
use dagger_array::{Block, Element, Shape};

/// Why received bytes do not make a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a received message does not make a value: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Why a value cannot be sent (the receiving ranks get this as the value's failure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a value could not be encoded: {}", self.0)
    }
}

impl std::error::Error for EncodeError {}

/// A value that can move from one rank to another.
///
/// `encode` writes small metadata (under 1 GiB) into `meta` and returns the bulk of the
/// value: bytes borrowed from it are sent as they are, without a copy, while the value is
/// kept alive; owned bytes (a serialized form) are sent and dropped. Bulk of any size
/// goes, in pieces. An encode error reaches the receiving ranks as the value's failure.
/// `decode` makes the value again from both.
pub trait Transfer: Send + Sync + Sized + 'static {
    /// Writes the metadata; returns the bulk bytes (empty when everything is in `meta`).
    fn encode<'a>(&'a self, meta: &mut Vec<u8>) -> Result<Cow<'a, [u8]>, EncodeError>;
    /// Makes the value from what `encode` produced on the sending rank.
    fn decode(meta: &[u8], bulk: &[u8]) -> Result<Self, DecodeError>;
}

fn pod_vec<T: Pod>(bulk: &[u8]) -> Result<Vec<T>, DecodeError> {
    let size = std::mem::size_of::<T>();
    if size != 0 && !bulk.len().is_multiple_of(size) {
        return Err(DecodeError(format!(
            "{} bytes are not a whole number of {}-byte `{}` elements",
            bulk.len(),
            size,
            std::any::type_name::<T>()
        )));
    }
    // Copies: the received bytes need not be aligned for `T`.
    Ok(bytemuck::pod_collect_to_vec(bulk))
}

macro_rules! scalars {
    ($($t:ty),*) => {$(
        impl Transfer for $t {
            fn encode<'a>(&'a self, _meta: &mut Vec<u8>) -> Result<Cow<'a, [u8]>, EncodeError> {
                Ok(Cow::Borrowed(bytemuck::bytes_of(self)))
            }
            fn decode(_meta: &[u8], bulk: &[u8]) -> Result<Self, DecodeError> {
                if bulk.len() != std::mem::size_of::<$t>() {
                    return Err(DecodeError(format!(
                        "{} bytes for a `{}`", bulk.len(), stringify!($t)
                    )));
                }
                Ok(bytemuck::pod_read_unaligned(bulk))
            }
        }
    )*};
}

scalars!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64);

impl<T: Pod + Send + Sync> Transfer for Vec<T> {
    fn encode<'a>(&'a self, meta: &mut Vec<u8>) -> Result<Cow<'a, [u8]>, EncodeError> {
        // The length, for zero-sized elements (no bytes to count).
        meta.extend_from_slice(&(self.len() as u64).to_le_bytes());
        Ok(Cow::Borrowed(bytemuck::cast_slice(self)))
    }
    fn decode(meta: &[u8], bulk: &[u8]) -> Result<Self, DecodeError> {
        let len = read_u64(meta, 0).ok_or_else(|| {
            DecodeError(format!(
                "a vector's length needs 8 bytes, not {}",
                meta.len()
            ))
        })?;
        if std::mem::size_of::<T>() == 0 {
            // No bytes to allocate or copy: a length of `()`s is free.
            return Ok(vec![T::zeroed(); len as usize]);
        }
        let values = pod_vec::<T>(bulk)?;
        if values.len() as u64 != len {
            return Err(DecodeError(format!(
                "{} elements where {len} were sent",
                values.len()
            )));
        }
        Ok(values)
    }
}

impl Transfer for String {
    fn encode<'a>(&'a self, _meta: &mut Vec<u8>) -> Result<Cow<'a, [u8]>, EncodeError> {
        Ok(Cow::Borrowed(self.as_bytes()))
    }
    fn decode(_meta: &[u8], bulk: &[u8]) -> Result<Self, DecodeError> {
        String::from_utf8(bulk.to_vec()).map_err(|e| DecodeError(e.to_string()))
    }
}

impl<T: Element + Pod> Transfer for Block<T> {
    fn encode<'a>(&'a self, meta: &mut Vec<u8>) -> Result<Cow<'a, [u8]>, EncodeError> {
        let Shape { rows, cols } = self.shape();
        meta.extend_from_slice(&(rows as u64).to_le_bytes());
        meta.extend_from_slice(&(cols as u64).to_le_bytes());
        Ok(Cow::Borrowed(bytemuck::cast_slice(self.as_slice())))
    }
    fn decode(meta: &[u8], bulk: &[u8]) -> Result<Self, DecodeError> {
        let (Some(rows), Some(cols)) = (read_u64(meta, 0), read_u64(meta, 8)) else {
            return Err(DecodeError(format!(
                "a block's shape needs 16 bytes, not {}",
                meta.len()
            )));
        };
        let (Ok(rows), Ok(cols)) = (usize::try_from(rows), usize::try_from(cols)) else {
            return Err(DecodeError(format!(
                "a {rows} x {cols} block does not fit in memory"
            )));
        };
        Block::new(Shape { rows, cols }, pod_vec(bulk)?).map_err(|e| DecodeError(e.to_string()))
    }
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let raw = bytes.get(at..at + 8)?;
    Some(u64::from_le_bytes(raw.try_into().ok()?))
}

/// Any serde value, sent as postcard bytes: wrap a value in `Serde` to move it.
///
/// ```
/// use dagger_mpi::{Serde, Transfer};
///
/// let value = Serde(vec![("a".to_string(), 1u32)]);
/// let mut meta = Vec::new();
/// let bulk = value.encode(&mut meta)?.into_owned();
/// let back = Serde::<Vec<(String, u32)>>::decode(&meta, &bulk)?;
/// assert_eq!(back.0, value.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Serde<T>(pub T);

impl<T> Transfer for Serde<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    fn encode<'a>(&'a self, _meta: &mut Vec<u8>) -> Result<Cow<'a, [u8]>, EncodeError> {
        // The bytes go as bulk: any size, in pieces.
        postcard::to_stdvec(&self.0).map(Cow::Owned).map_err(|e| {
            EncodeError(format!(
                "postcard could not write a `{}`: {e}",
                std::any::type_name::<T>()
            ))
        })
    }
    fn decode(_meta: &[u8], bulk: &[u8]) -> Result<Self, DecodeError> {
        postcard::from_bytes(bulk).map(Serde).map_err(|e| {
            DecodeError(format!(
                "postcard could not read a `{}`: {e}",
                std::any::type_name::<T>()
            ))
        })
    }
}

/// A short tag of a type, the same on every rank running the same program: a message
/// carries its value's tag, so a value received as the wrong type is an error.
pub(crate) fn type_tag<T: 'static>() -> u64 {
    // FNV-1a of the type's name: stable across processes (unlike `TypeId`'s hash,
    // which is too, but is not documented to be).
    std::any::type_name::<T>()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Transfer>(value: &T) -> Result<T, DecodeError> {
        let mut meta = Vec::new();
        let bulk = value.encode(&mut meta).expect("encodes").into_owned();
        T::decode(&meta, &bulk)
    }

    #[test]
    fn values_come_back_equal() {
        assert_eq!(round_trip(&7.5f64).unwrap(), 7.5);
        assert_eq!(round_trip(&vec![1u32, 2, 3]).unwrap(), vec![1, 2, 3]);
        assert_eq!(round_trip(&vec![(); 5]).unwrap().len(), 5);
        assert_eq!(round_trip(&"héllo".to_string()).unwrap(), "héllo");
        let block = Block::new((2, 3).into(), vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(round_trip(&block).unwrap(), block);
        let serde = Serde((1u8, "x".to_string(), vec![Some(2i64), None]));
        assert_eq!(round_trip(&serde).unwrap(), serde);
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        assert!(f64::decode(&[], &[0; 7]).is_err());
        assert!(Vec::<u32>::decode(&[], &[0; 5]).is_err());
        assert!(String::decode(&[], &[0xff, 0xfe]).is_err());
        assert!(Block::<f64>::decode(&[0; 3], &[]).is_err());
        // A shape that does not match the elements.
        let mut meta = 2u64.to_le_bytes().to_vec();
        meta.extend_from_slice(&2u64.to_le_bytes());
        assert!(Block::<f64>::decode(&meta, &[0; 8]).is_err());
        assert!(Serde::<(u64, String)>::decode(&[], &[0xff; 3]).is_err());
        // A shape too large for memory, and a vector whose length disagrees.
        let mut huge = (1u64 << 32).to_le_bytes().to_vec();
        huge.extend_from_slice(&(1u64 << 32).to_le_bytes());
        assert!(Block::<f64>::decode(&huge, &[]).is_err());
        assert!(Vec::<u32>::decode(&3u64.to_le_bytes(), &[0; 8]).is_err());
        assert!(Vec::<u32>::decode(&[], &[0; 8]).is_err());
    }

    #[test]
    fn type_tags_differ_by_type() {
        assert_ne!(type_tag::<f64>(), type_tag::<f32>());
        assert_eq!(type_tag::<Block<f64>>(), type_tag::<Block<f64>>());
    }
}
