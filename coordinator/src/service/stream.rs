//! Streamed uploads (a model update, a masked input): the header comes first
//! and is checked before anything else is read; it fixes how many bytes may
//! follow, and no more are read.

use cohort_proto::v1::{self, masked_input_chunk, update_chunk};
use tokio_stream::StreamExt;
use tonic::{Request, Status, Streaming};

use super::FederationService;

/// What one chunk of an upload holds.
pub(super) enum Chunk<H> {
    /// The header (first, and only first).
    Header(H),
    /// Bytes of the body.
    Data(Vec<u8>),
    /// Nothing.
    Empty,
}

/// A chunk type of a streamed upload, and how refusals name the upload.
pub(super) trait UploadChunk {
    /// The upload's header.
    type Header;
    /// The upload, as a subject ("update").
    const WHAT: &'static str;
    /// The upload, with its article ("an update").
    const ONE: &'static str;
    /// Its stream, with its article ("an update stream").
    const STREAM: &'static str;
    /// One of its chunks ("update chunk").
    const CHUNK: &'static str;
    /// What the chunk holds.
    fn into_chunk(self) -> Chunk<Self::Header>;
    /// The request header inside the upload's header.
    fn request_header(header: &Self::Header) -> Option<&v1::RequestHeader>;
}

impl UploadChunk for v1::UpdateChunk {
    type Header = v1::UpdateHeader;
    const WHAT: &'static str = "update";
    const ONE: &'static str = "an update";
    const STREAM: &'static str = "an update stream";
    const CHUNK: &'static str = "update chunk";

    fn into_chunk(self) -> Chunk<Self::Header> {
        match self.part {
            Some(update_chunk::Part::Header(header)) => Chunk::Header(header),
            Some(update_chunk::Part::Data(data)) => Chunk::Data(data),
            None => Chunk::Empty,
        }
    }

    fn request_header(header: &Self::Header) -> Option<&v1::RequestHeader> {
        header.header.as_ref()
    }
}

impl UploadChunk for v1::MaskedInputChunk {
    type Header = v1::MaskedInputHeader;
    const WHAT: &'static str = "masked input";
    const ONE: &'static str = "a masked input";
    const STREAM: &'static str = "a masked-input stream";
    const CHUNK: &'static str = "masked-input chunk";

    fn into_chunk(self) -> Chunk<Self::Header> {
        match self.part {
            Some(masked_input_chunk::Part::Header(header)) => Chunk::Header(header),
            Some(masked_input_chunk::Part::Data(data)) => Chunk::Data(data),
            None => Chunk::Empty,
        }
    }

    fn request_header(header: &Self::Header) -> Option<&v1::RequestHeader> {
        header.header.as_ref()
    }
}

/// Reads an upload's first chunk, which must be its header, and the
/// registered node behind it. Returns the node, the header and the rest of
/// the stream; anything else is refused (and logged).
pub(super) async fn open_upload<C: UploadChunk>(
    service: &FederationService,
    request: Request<Streaming<C>>,
) -> Result<(String, C::Header, Streaming<C>), Status> {
    let (metadata, extensions, mut stream) = request.into_parts();
    let first = stream.next().await.transpose()?;
    let probe = Request::from_parts(metadata, extensions, ());
    let Some(Chunk::Header(header)) = first.map(C::into_chunk) else {
        let node = service.authenticate(&probe, None).unwrap_or_default();
        return Err(service.refuse(
            &node,
            Status::invalid_argument(format!("{} must start with its header", C::STREAM)),
        ));
    };
    let node_id = service.registered_node(&probe, C::request_header(&header))?;
    Ok((node_id, header, stream))
}

/// The body of `node_id`'s upload: at most `declared` bytes, in data chunks
/// only. A larger body, a second header or an empty chunk is refused (and
/// logged) with what was wrong.
pub(super) async fn read_body<C: UploadChunk>(
    service: &FederationService,
    node_id: &str,
    stream: &mut Streaming<C>,
    declared: usize,
) -> Result<Vec<u8>, Status> {
    let invalid = |message: String| service.refuse(node_id, Status::invalid_argument(message));
    let mut bytes = Vec::with_capacity(declared);
    while let Some(chunk) = stream.next().await {
        match chunk?.into_chunk() {
            Chunk::Data(data) => {
                if bytes.len() + data.len() > declared {
                    return Err(invalid(format!(
                        "{} carries more than the declared {declared} bytes",
                        C::WHAT
                    )));
                }
                bytes.extend_from_slice(&data);
            }
            Chunk::Header(_) => {
                return Err(invalid(format!("{} has exactly one header", C::ONE)));
            }
            Chunk::Empty => return Err(invalid(format!("empty {}", C::CHUNK))),
        }
    }
    Ok(bytes)
}
