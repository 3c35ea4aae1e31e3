//! The per-stream chat log on disk, `{data_dir}/chat/{stream}.jsonl`: one [`LogRecord`]
//! per line, appended as the room produces them and read back on start and for export.
//!
//! Each record goes to the operating system in a single `write` before the call returns
//! (so it survives the process dying); with [`Durability::Sync`] it is also synced to the
//! disk (so it survives the machine dying, at the cost of a disk flush per event). A
//! torn last line, from a crash mid-write, is skipped on read and sealed off on open.
//!
//! This does blocking file I/O: drive it from the chat task, never from the media path.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use signaling_proto::{ExportedChatMessage, is_valid_stream_name};

use crate::error::LogError;
use crate::record::{LogRecord, export};

/// How hard [`ChatLog::append`] works to keep a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Hand each record to the operating system (survives a process crash).
    #[default]
    Flush,
    /// Also sync each record to the disk (survives a power loss).
    Sync,
}

/// One stream's chat log, open for appending.
#[derive(Debug)]
pub struct ChatLog {
    file: File,
    path: PathBuf,
    durability: Durability,
}

impl ChatLog {
    /// Where the log of `stream` lives under `data_dir`. Refuses names that are not
    /// stream names, so no name can point outside `{data_dir}/chat`.
    pub fn path(data_dir: &Path, stream: &str) -> Result<PathBuf, LogError> {
        if !is_valid_stream_name(stream) {
            return Err(LogError::InvalidStreamName(stream.to_owned()));
        }
        Ok(data_dir.join("chat").join(format!("{stream}.jsonl")))
    }

    /// Opens (creating if needed) the log of `stream` and returns it with the records
    /// already in it, to restore the room from.
    pub fn open(
        data_dir: &Path,
        stream: &str,
        durability: Durability,
    ) -> Result<(ChatLog, Vec<LogRecord>), LogError> {
        let path = Self::path(data_dir, stream)?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|source| LogError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let bytes = read_bytes(&path)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| LogError::Io {
                path: path.clone(),
                source,
            })?;
        // A crash mid-write leaves a line without its newline; end it, or the next record
        // would be glued to it and lost with it.
        if bytes.last().is_some_and(|&b| b != b'\n') {
            file.write_all(b"\n").map_err(|source| LogError::Io {
                path: path.clone(),
                source,
            })?;
        }
        let records = parse_records(&bytes, &path);
        let log = ChatLog {
            file,
            path,
            durability,
        };
        Ok((log, records))
    }

    /// Appends one record as a line; returns once the record is written as
    /// [`Durability`] asks.
    pub fn append(&mut self, record: &LogRecord) -> Result<(), LogError> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| match self.durability {
                Durability::Flush => Ok(()),
                Durability::Sync => self.file.sync_data(),
            })
            .map_err(|source| LogError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// The file this log writes.
    pub fn file_path(&self) -> &Path {
        &self.path
    }

    /// Every record in the log of `stream` (none if it has no log yet).
    pub fn read(data_dir: &Path, stream: &str) -> Result<Vec<LogRecord>, LogError> {
        let path = Self::path(data_dir, stream)?;
        let bytes = read_bytes(&path)?;
        Ok(parse_records(&bytes, &path))
    }

    /// The chat of `stream` for `GET /api/streams/{stream}/chat`: every message, in
    /// order, deleted ones marked.
    pub fn export(data_dir: &Path, stream: &str) -> Result<Vec<ExportedChatMessage>, LogError> {
        Ok(export(&Self::read(data_dir, stream)?))
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, LogError> {
    match fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(LogError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The records in `bytes`, skipping lines that do not parse (a torn write, or a record
/// from a newer version) rather than losing the whole log.
fn parse_records(bytes: &[u8], path: &Path) -> Vec<LogRecord> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .filter_map(|(index, line)| match serde_json::from_slice(line) {
            Ok(record) => Some(record),
            Err(error) => {
                tracing::warn!(path = %path.display(), line = index + 1, %error, "skipping unreadable chat log line");
                None
            }
        })
        .collect()
}
