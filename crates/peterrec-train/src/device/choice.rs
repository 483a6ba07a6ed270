//! [`DeviceChoice`]: which device to run on, parsed from and printed as `cpu`, `flex`, `cuda` or
//! `cuda:N`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which device to run on: `cpu`, `flex` (the CPU through Burn's `Flex` backend), `cuda`
/// (= `cuda:0`) or `cuda:N`.
///
/// Parsed with [`FromStr`] (case-insensitive, surrounding spaces ignored), printed with
/// [`Display`](fmt::Display) in the same syntax, and (de)serialised as that string.
///
/// The default is the CPU backend that trains fastest in this build: `flex` when the `flex`
/// feature is on (the facade's default), else `cpu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceChoice {
    /// The CPU (`NdArray` backend).
    Cpu,
    /// The CPU through Burn's `Flex` backend (needs the `flex` feature).
    Flex,
    /// The CUDA GPU with this index.
    Cuda(usize),
}

impl Default for DeviceChoice {
    fn default() -> Self {
        if cfg!(feature = "flex") {
            DeviceChoice::Flex
        } else {
            DeviceChoice::Cpu
        }
    }
}

/// Why a device string could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseDeviceError {
    /// The string was empty.
    #[error("empty device name (expected \"cpu\", \"flex\", \"cuda\" or \"cuda:N\")")]
    Empty,
    /// The device kind is not known.
    #[error("unknown device {0:?} (expected \"cpu\", \"flex\", \"cuda\" or \"cuda:N\")")]
    Unknown(String),
    /// `cuda:` was followed by something that is not a non-negative integer.
    #[error("invalid CUDA device index in {0:?} (expected \"cuda:N\" with N = 0, 1, ...)")]
    BadIndex(String),
}

impl FromStr for DeviceChoice {
    type Err = ParseDeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "" => Err(ParseDeviceError::Empty),
            "cpu" => Ok(DeviceChoice::Cpu),
            "flex" => Ok(DeviceChoice::Flex),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => match t.strip_prefix("cuda:") {
                Some(idx) => idx
                    .parse::<usize>()
                    .map(DeviceChoice::Cuda)
                    .map_err(|_| ParseDeviceError::BadIndex(s.to_string())),
                None => Err(ParseDeviceError::Unknown(s.to_string())),
            },
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Flex => f.write_str("flex"),
            DeviceChoice::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl TryFrom<String> for DeviceChoice {
    type Error = ParseDeviceError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DeviceChoice> for String {
    fn from(d: DeviceChoice) -> String {
        d.to_string()
    }
}

impl DeviceChoice {
    /// Whether this is a CUDA device.
    pub fn is_cuda(&self) -> bool {
        matches!(self, DeviceChoice::Cuda(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_valid() {
        assert_eq!("cpu".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        assert_eq!(" CPU ".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:1".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(1)));
        assert_eq!(
            "CUDA:12".parse::<DeviceChoice>(),
            Ok(DeviceChoice::Cuda(12))
        );
        assert_eq!(" Flex".parse::<DeviceChoice>(), Ok(DeviceChoice::Flex));
        let fastest = if cfg!(feature = "flex") {
            DeviceChoice::Flex
        } else {
            DeviceChoice::Cpu
        };
        assert_eq!(DeviceChoice::default(), fastest);
        assert!(DeviceChoice::Cuda(0).is_cuda() && !DeviceChoice::Cpu.is_cuda());
        assert!(!DeviceChoice::Flex.is_cuda());
    }

    #[test]
    fn parse_invalid_is_typed() {
        assert_eq!("".parse::<DeviceChoice>(), Err(ParseDeviceError::Empty));
        assert_eq!(
            "tpu".parse::<DeviceChoice>(),
            Err(ParseDeviceError::Unknown("tpu".into()))
        );
        for bad in ["cuda:", "cuda:x", "cuda:-1", "cuda:1:2"] {
            assert_eq!(
                bad.parse::<DeviceChoice>(),
                Err(ParseDeviceError::BadIndex(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn display_and_serde_round_trip() {
        for d in [
            DeviceChoice::Cpu,
            DeviceChoice::Flex,
            DeviceChoice::Cuda(0),
            DeviceChoice::Cuda(3),
        ] {
            assert_eq!(d.to_string().parse::<DeviceChoice>(), Ok(d));
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{d}\""));
            assert_eq!(serde_json::from_str::<DeviceChoice>(&json).unwrap(), d);
        }
        assert!(serde_json::from_str::<DeviceChoice>("\"tpu\"").is_err());
    }
}
