//! Reading a streamed upload (a model update, a masked input) after its
//! header: the header fixed how many bytes may follow, and no more are read.

use tokio_stream::StreamExt;
use tonic::{Status, Streaming};

use super::FederationService;

/// What a chunk after the header holds.
pub(super) enum Chunk {
    /// Bytes of the body.
    Data(Vec<u8>),
    /// A second header.
    Header,
    /// Nothing.
    Empty,
}

/// How refusals name an upload, e.g. "update", "an update", "update chunk".
pub(super) struct Upload {
    /// The upload, as a subject.
    pub what: &'static str,
    /// The upload, with its article.
    pub one: &'static str,
    /// One of its chunks.
    pub chunk: &'static str,
}

/// The body of `node_id`'s upload: at most `declared` bytes, in data chunks
/// only. A larger body, a second header or an empty chunk is refused (and
/// logged) with what was wrong.
pub(super) async fn read_body<C>(
    service: &FederationService,
    node_id: &str,
    stream: &mut Streaming<C>,
    declared: usize,
    upload: &Upload,
    chunk_of: impl Fn(C) -> Chunk,
) -> Result<Vec<u8>, Status> {
    let invalid = |message: String| service.refuse(node_id, Status::invalid_argument(message));
    let mut bytes = Vec::with_capacity(declared);
    while let Some(chunk) = stream.next().await {
        match chunk_of(chunk?) {
            Chunk::Data(data) => {
                if bytes.len() + data.len() > declared {
                    return Err(invalid(format!(
                        "{} carries more than the declared {declared} bytes",
                        upload.what
                    )));
                }
                bytes.extend_from_slice(&data);
            }
            Chunk::Header => {
                return Err(invalid(format!("{} has exactly one header", upload.one)));
            }
            Chunk::Empty => return Err(invalid(format!("empty {}", upload.chunk))),
        }
    }
    Ok(bytes)
}
