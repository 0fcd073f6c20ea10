//! What the crate's key types share: their 32 bytes are compared in constant time,
//! never printed (`Debug` shows only the type's name), and overwritten when dropped.

/// Implements `PartialEq`, `Eq`, `Debug` and `Drop` as above for a tuple struct over
/// `[u8; 32]`.
macro_rules! secret_bytes {
    ($name:ident) => {
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                // No early exit: the time taken says nothing about the bytes.
                self.0
                    .iter()
                    .zip(other.0.iter())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
            }
        }

        impl Eq for $name {}

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.0.fill(0);
                std::hint::black_box(&self.0);
            }
        }
    };
}

pub(crate) use secret_bytes;
