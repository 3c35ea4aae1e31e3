//! Debian's `ffmpeg` and `ffprobe`, run as a user would run them: to make real test media from
//! ffmpeg's own sources, and to judge a recording by what a player would notice (does it
//! decode without errors, how long is it, can it be seeked, where do its streams start).
//!
//! Every function runs the tool synchronously; they take well under a second on the few
//! seconds of 320x240 media the tests make. Install the tools with `apt-get install -y ffmpeg`
//! (`./test.sh` does).

use std::path::Path;
use std::process::Command;

/// Why running ffmpeg or ffprobe did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum MediaToolError {
    /// The program could not be started (not installed?).
    #[error("cannot run {program} ({source}); install it with `apt-get install -y ffmpeg`")]
    Spawn {
        /// `ffmpeg` or `ffprobe`.
        program: &'static str,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// The program ran and failed.
    #[error("{program} failed on {what}: {stderr}")]
    Failed {
        /// `ffmpeg` or `ffprobe`.
        program: &'static str,
        /// The file it worked on.
        what: String,
        /// What it printed.
        stderr: String,
    },
    /// The program's output was not what we asked for.
    #[error("unexpected {program} output {output:?}")]
    Unparsable {
        /// `ffmpeg` or `ffprobe`.
        program: &'static str,
        /// The line that did not parse.
        output: String,
    },
    /// A file could not be read or written.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// The result of a media tool call.
pub type ToolResult<T> = std::result::Result<T, MediaToolError>;

/// What a program printed, and whether it exited with success.
struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(program: &'static str, args: &[&str]) -> ToolResult<Output> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| MediaToolError::Spawn { program, source })?;
    Ok(Output {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Runs `program` and wants success; returns its stdout.
fn run_ok(program: &'static str, file: &Path, args: &[&str]) -> ToolResult<String> {
    let output = run(program, args)?;
    if output.ok {
        Ok(output.stdout)
    } else {
        Err(MediaToolError::Failed {
            program,
            what: file.display().to_string(),
            stderr: output.stderr,
        })
    }
}

/// Runs `ffprobe -v error {extra} -show_entries {entries} -of csv=p=0 FILE` and wants success;
/// returns its stdout, one line per entry.
fn ffprobe(file: &Path, extra: &[&str], entries: &str) -> ToolResult<String> {
    let mut args = vec!["-v", "error"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-show_entries", entries, "-of", "csv=p=0", path_str(file)?]);
    run_ok("ffprobe", file, &args)
}

fn path_str(path: &Path) -> ToolResult<&str> {
    path.to_str().ok_or_else(|| MediaToolError::Io {
        what: "name",
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not UTF-8"),
    })
}

/// The video encoder a test source is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceVideo {
    /// libvpx VP8, into WebM.
    Vp8,
    /// libvpx-vp9 (profile 0), into WebM.
    Vp9,
    /// libx264 constrained baseline (no B-frames, as WebRTC sends it), into Matroska.
    H264,
}

impl SourceVideo {
    /// The file extension of the container the source goes into: `webm` or `mkv`.
    pub fn extension(self) -> &'static str {
        match self {
            SourceVideo::Vp8 | SourceVideo::Vp9 => "webm",
            SourceVideo::H264 => "mkv",
        }
    }
}

/// What test media to make: ffmpeg's `testsrc` picture (30 fps, a keyframe every `gop` frames,
/// no B-frames or alt-ref frames, as a real-time WebRTC encoder makes them) and a 440 Hz
/// `sine` as stereo Opus at 64 kbit/s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestMedia {
    /// The video encoder.
    pub video: SourceVideo,
    /// How long, in seconds.
    pub seconds: u32,
    /// Frames from one keyframe to the next.
    pub gop: u32,
    /// Picture width and height.
    pub size: (u32, u32),
    /// A constant video bitrate in kbit/s (VP8 and VP9), or `None` for a 500 kbit/s target
    /// (VP8 and VP9) or x264's own choice.
    pub constant_kbps: Option<u32>,
}

impl TestMedia {
    /// `seconds` of 320x240 video with a keyframe every `gop` frames.
    pub fn new(video: SourceVideo, seconds: u32, gop: u32) -> Self {
        TestMedia {
            video,
            seconds,
            gop,
            size: (320, 240),
            constant_kbps: None,
        }
    }

    /// Encodes the media into `out` (whose extension should be [`SourceVideo::extension`]).
    pub fn make(&self, out: &Path) -> ToolResult<()> {
        let vpx = |encoder: &str| -> Vec<String> {
            let kbps = self.constant_kbps.unwrap_or(500);
            let mut args: Vec<String> = [
                "-c:v",
                encoder,
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-auto-alt-ref",
                "0",
                "-lag-in-frames",
                "0",
                "-b:v",
            ]
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
            args.push(format!("{kbps}k"));
            if self.constant_kbps.is_some() {
                args.extend(["-minrate".to_owned(), format!("{kbps}k")]);
                args.extend(["-maxrate".to_owned(), format!("{kbps}k")]);
            }
            args
        };
        let video_args: Vec<String> = match self.video {
            SourceVideo::Vp8 => vpx("libvpx"),
            SourceVideo::Vp9 => vpx("libvpx-vp9"),
            SourceVideo::H264 => [
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-profile:v",
                "baseline",
                "-bf",
                "0",
            ]
            .iter()
            .map(|a| (*a).to_owned())
            .collect(),
        };
        let picture = format!("testsrc=size={}x{}:rate=30", self.size.0, self.size.1);
        let seconds = self.seconds.to_string();
        let gop = self.gop.to_string();
        let mut args = vec![
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            &picture,
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            &seconds,
            "-g",
            &gop,
            "-keyint_min",
            &gop,
            "-pix_fmt",
            "yuv420p",
        ];
        args.extend(video_args.iter().map(String::as_str));
        args.extend_from_slice(&["-c:a", "libopus", "-ac", "2", "-b:a", "64k"]);
        args.push(path_str(out)?);
        run_ok("ffmpeg", out, &args).map(drop)
    }
}

/// Encodes `seconds` of 320x240 test picture and tone (see [`TestMedia`]) into `out`.
pub fn make_test_media(out: &Path, video: SourceVideo, seconds: u32, gop: u32) -> ToolResult<()> {
    TestMedia::new(video, seconds, gop).make(out)
}

/// One stream of a file, as ffprobe reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbedStream {
    /// `vp8`, `h264`, `opus`, ...
    pub codec_name: String,
    /// `video` or `audio`.
    pub codec_type: String,
    /// When the stream starts, in seconds (`None` if ffprobe reports `N/A`).
    pub start_time: Option<f64>,
}

/// The streams of a file, in stream index order.
pub fn probe_streams(file: &Path) -> ToolResult<Vec<ProbedStream>> {
    let stdout = ffprobe(file, &[], "stream=codec_name,codec_type,start_time")?;
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.trim().split(',').collect();
            match fields.as_slice() {
                [name, kind, start, ..] => Ok(ProbedStream {
                    codec_name: (*name).to_owned(),
                    codec_type: (*kind).to_owned(),
                    start_time: start.parse().ok(),
                }),
                _ => Err(MediaToolError::Unparsable {
                    program: "ffprobe",
                    output: line.to_owned(),
                }),
            }
        })
        .collect()
}

/// One packet of a file, as ffprobe reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbedPacket {
    /// Its stream's index.
    pub stream_index: usize,
    /// Whether its stream is a video stream.
    pub video: bool,
    /// Presentation time in seconds (`None` if the container gave none).
    pub pts: Option<f64>,
    /// Whether it is marked a keyframe.
    pub keyframe: bool,
}

impl ProbedPacket {
    /// Presentation time in milliseconds.
    ///
    /// # Panics
    ///
    /// When the container gave the packet no time, which fails the test asking: every packet
    /// of a Matroska or WebM file has one.
    pub fn pts_ms(&self) -> f64 {
        match self.pts {
            Some(seconds) => seconds * 1000.0,
            None => panic!("ffprobe gave no time for {self:?}"),
        }
    }
}

/// Every packet of a file, in file order.
pub fn probe_packets(file: &Path) -> ToolResult<Vec<ProbedPacket>> {
    let stdout = ffprobe(file, &[], "packet=codec_type,stream_index,pts_time,flags")?;
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.trim().split(',').collect();
            let parsed = match fields.as_slice() {
                // ffprobe writes the fields in its own order, not the order asked for.
                [kind, index, pts, flags, ..] => {
                    index.parse().ok().map(|stream_index| ProbedPacket {
                        stream_index,
                        video: *kind == "video",
                        pts: pts.parse().ok(),
                        keyframe: flags.starts_with('K'),
                    })
                }
                _ => None,
            };
            parsed.ok_or_else(|| MediaToolError::Unparsable {
                program: "ffprobe",
                output: line.to_owned(),
            })
        })
        .collect()
}

/// The container's duration in seconds, as ffprobe reports it (`None` if it reports none).
pub fn probe_duration(file: &Path) -> ToolResult<Option<f64>> {
    let stdout = ffprobe(file, &[], "format=duration")?;
    Ok(stdout.trim().parse().ok())
}

/// How many video frames actually decode (ffprobe `-count_frames`: it runs the decoder).
pub fn decoded_video_frames(file: &Path) -> ToolResult<u64> {
    let stdout = ffprobe(
        file,
        &["-count_frames", "-select_streams", "v:0"],
        "stream=nb_read_frames",
    )?;
    let line = stdout.trim().trim_end_matches(',');
    line.parse().map_err(|_| MediaToolError::Unparsable {
        program: "ffprobe",
        output: stdout.clone(),
    })
}

/// What `ffmpeg -v error -xerror -i FILE -f null -` prints (with the time base below): empty
/// when every packet decodes.
/// A failing run that printed nothing is reported as such.
pub fn decode_errors(file: &Path) -> ToolResult<String> {
    decode_log(file, &["-v", "error", "-xerror"])
}

/// What `ffmpeg -v warning -i FILE -f null -` prints: errors and warnings, such as a file
/// that ends in the middle of an element, without stopping at the first.
pub fn decode_warnings(file: &Path) -> ToolResult<String> {
    decode_log(file, &["-v", "warning"])
}

fn decode_log(file: &Path, flags: &[&str]) -> ToolResult<String> {
    let mut args = flags.to_vec();
    // The decoded pictures go to the null muxer in a millisecond time base, as they are in
    // the file. Left to itself, ffmpeg picks 1/frame-rate from a guessed rate; a file with a
    // gap (lost frames, a publisher who came back) makes it guess 29.97 fps, and frames 33 ms
    // apart then round onto one 33.37 ms tick: "non monotonically increasing dts to muxer", a
    // complaint about ffmpeg's own output that no player would show.
    args.extend_from_slice(&[
        "-i",
        path_str(file)?,
        "-enc_time_base:v",
        "1:1000",
        "-f",
        "null",
        "-",
    ]);
    let output = run("ffmpeg", &args)?;
    let mut printed = output.stdout + &output.stderr;
    if !output.ok && printed.trim().is_empty() {
        printed = "ffmpeg failed without a message".to_owned();
    }
    Ok(printed)
}

/// Seeks to `seconds` (`-ss` before `-i`: a container seek, which uses the Cues) and decodes
/// one video frame; returns what ffmpeg printed (empty when that worked).
pub fn seek_errors(file: &Path, seconds: f64) -> ToolResult<String> {
    let at = format!("{seconds:.3}");
    let output = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-xerror",
            "-ss",
            &at,
            "-i",
            path_str(file)?,
            "-frames:v",
            "1",
            "-f",
            "null",
            "-",
        ],
    )?;
    let mut printed = output.stdout + &output.stderr;
    if !output.ok && printed.trim().is_empty() {
        printed = "ffmpeg failed without a message".to_owned();
    }
    Ok(printed)
}

/// The Matroska `Cues` element ID: the seek index a finished recording carries.
const CUES_ID: [u8; 4] = [0x1C, 0x53, 0xBB, 0x6B];

/// Whether the file holds a `Cues` element (its ID, anywhere in the file: a test-grade check,
/// confirmed by [`seek_errors`]).
pub fn has_cues(file: &Path) -> ToolResult<bool> {
    let bytes = std::fs::read(file).map_err(|source| MediaToolError::Io {
        what: "read",
        path: file.display().to_string(),
        source,
    })?;
    Ok(bytes.windows(CUES_ID.len()).any(|w| w == CUES_ID))
}
