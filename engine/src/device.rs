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
    let device = shared_cuda_device()?;
    Ok(SelectedDevice {
        device,
        name: "cuda",
        reason: "CUDA GPU 0 found".into(),
    })
}

/// GPU 0, opened once per process, with one CUDA stream of its own that every thread uses:
/// every model (target, draft, planner) and every thread (a scheduler per model, the app's
/// runs) then enqueues on the same stream, so stream order alone orders every use of every
/// tensor. That is why candle's per-tensor event tracking is switched off: it records and
/// waits on events around each operation to order uses across streams, several
/// microseconds per operation, and a 64-layer decoding step runs over a thousand small
/// operations.
///
/// Candle's plain `Device::new_cuda` would not do: it hands out CUDA's per-thread default
/// stream, a different stream for each host thread. With event tracking off, two threads'
/// work then ran unordered: two schedulers' kernels overlapped on the GPU and shared
/// cuBLAS's workspace (prefill attention), and a buffer freed on one thread's stream could
/// be read on another's. It showed as degenerate text when the GPU was slow enough for the
/// two streams to overlap, e.g. shared with a second process.
fn shared_cuda_device() -> std::result::Result<Device, String> {
    static DEVICE: std::sync::OnceLock<std::result::Result<Device, String>> =
        std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| {
            let device =
                Device::new_cuda_with_stream(0).map_err(|e| format!("has no usable GPU ({e})"))?;
            #[cfg(feature = "cuda")]
            if let Device::Cuda(cuda) = &device {
                // SAFETY: tensors are created after this call and used on this device's
                // one stream only (see above); nothing crosses to another stream.
                unsafe { cuda.disable_event_tracking() };
            }
            Ok(device)
        })
        .clone()
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
