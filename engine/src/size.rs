//! Byte sizes as people write them in scenarios (`10KiB`, `100 MiB`, `4KB`, `1048576`).
//!
//! `KiB`/`MiB`/`GiB` are powers of 1024 and `KB`/`MB`/`GB` powers of 1000, as the units say;
//! parsing is delegated to `parse-size` so the grammar is the well-known one.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A number of bytes, parsed from and displayed as a human-readable size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

/// A size string that could not be understood.
#[derive(Debug, thiserror::Error)]
#[error("'{input}' is not a size: write a number of bytes or a number with a unit, e.g. 4KiB, 10MiB, 1GB")]
pub struct SizeError {
    input: String,
}

impl ByteSize {
    pub const KIB: u64 = 1024;
    pub const MIB: u64 = 1024 * 1024;

    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = SizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_size::parse_size(s.trim())
            .map(ByteSize)
            .map_err(|_| SizeError {
                input: s.to_string(),
            })
    }
}

impl fmt::Display for ByteSize {
    /// Always exact, because this text is also the serialized form (run specs sent to
    /// workers, `run.json`, `chopsticks scenarios`): the largest binary unit the size is a
    /// whole number of (`64KiB`), else the largest decimal one (`4KB`), else bytes (`1500B`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 8] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
            ("TB", 1_000_000_000_000),
            ("GB", 1_000_000_000),
            ("MB", 1_000_000),
            ("KB", 1_000),
        ];
        for (name, unit) in UNITS {
            if self.0 >= unit && self.0.is_multiple_of(unit) {
                return write!(f, "{}{name}", self.0 / unit);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_and_decimal_units() {
        assert_eq!("10KiB".parse::<ByteSize>().unwrap().0, 10 * 1024);
        assert_eq!("100 MiB".parse::<ByteSize>().unwrap().0, 100 << 20);
        assert_eq!("4KB".parse::<ByteSize>().unwrap().0, 4000);
        assert_eq!("1048576".parse::<ByteSize>().unwrap().0, 1 << 20);
        assert_eq!("0".parse::<ByteSize>().unwrap().0, 0);
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        let err = "ten megs".parse::<ByteSize>().unwrap_err().to_string();
        assert!(err.contains("'ten megs'") && err.contains("4KiB"), "{err}");
    }

    #[test]
    fn displays_round_trip() {
        for s in ["64KiB", "100MiB", "1GiB", "17B", "4KB", "1500B", "1536KiB"] {
            assert_eq!(s.parse::<ByteSize>().unwrap().to_string(), s);
        }
        assert_eq!(ByteSize(1536 * 1024).to_string(), "1536KiB");
        assert_eq!(ByteSize(0).to_string(), "0B");
    }

    proptest::proptest! {
        /// The text form is what crosses process boundaries: it must never round.
        #[test]
        fn any_size_survives_text_json_and_yaml(n in proptest::prelude::any::<u64>()) {
            let size = ByteSize(n);
            proptest::prop_assert_eq!(size.to_string().parse::<ByteSize>().unwrap(), size);
            let json: ByteSize = serde_json::from_str(&serde_json::to_string(&size).unwrap()).unwrap();
            proptest::prop_assert_eq!(json, size);
            let yaml: ByteSize = serde_yaml_ng::from_str(&serde_yaml_ng::to_string(&size).unwrap()).unwrap();
            proptest::prop_assert_eq!(yaml, size);
        }
    }
}
