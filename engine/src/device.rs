//! Choosing where the model runs: CUDA if built and present, else Metal, else CPU, unless the
//! user says otherwise; always with the reason, so "why is it slow" has an answer.

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda,
    Metal,
}

impl std::str::FromStr for DeviceChoice {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda),
            "metal" => Ok(Self::Metal),
            other => Err(EngineError::InvalidSetting(format!(
                "unknown device `{other}` (use auto, cpu, cuda or metal)"
            ))),
        }
    }
}

/// The device picked and why.
pub struct SelectedDevice {
    pub device: Device,
    pub name: &'static str,
    pub reason: String,
}

pub fn select_device(choice: DeviceChoice) -> Result<SelectedDevice> {
    let cpu = |reason: String| SelectedDevice {
        device: Device::Cpu,
        name: "cpu",
        reason,
    };
    match choice {
        DeviceChoice::Cpu => Ok(cpu("requested with --device cpu".into())),
        DeviceChoice::Cuda => cuda().map_err(|why| {
            EngineError::InvalidSetting(format!("CUDA was requested but is unavailable: {why}"))
        }),
        DeviceChoice::Metal => metal().map_err(|why| {
            EngineError::InvalidSetting(format!("Metal was requested but is unavailable: {why}"))
        }),
        DeviceChoice::Auto => match cuda() {
            Ok(d) => Ok(d),
            Err(cuda_why) => match metal() {
                Ok(d) => Ok(d),
                Err(metal_why) => Ok(cpu(format!("no GPU: CUDA {cuda_why}; Metal {metal_why}"))),
            },
        },
    }
}

fn cuda() -> std::result::Result<SelectedDevice, String> {
    if !candle_core::utils::cuda_is_available() {
        return Err("is not built in (build with --features cuda)".into());
    }
    let device = Device::new_cuda(0).map_err(|e| format!("has no usable GPU ({e})"))?;
    Ok(SelectedDevice {
        device,
        name: "cuda",
        reason: "CUDA GPU 0 found".into(),
    })
}

fn metal() -> std::result::Result<SelectedDevice, String> {
    if !candle_core::utils::metal_is_available() {
        return Err("is not built in (build with --features metal on macOS)".into());
    }
    let device = Device::new_metal(0).map_err(|e| format!("has no usable GPU ({e})"))?;
    Ok(SelectedDevice {
        device,
        name: "metal",
        reason: "Metal GPU found".into(),
    })
}
