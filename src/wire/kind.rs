//! What a frame is, by its type byte and its direction: the same byte
//! means different messages from the client (frontend) and from the
//! server (backend) (`D` is Describe one way and DataRow the other).
//! Frames stay raw bytes for forwarding; these name them for matching.

use super::Frame;

macro_rules! kinds {
    ($(#[$doc:meta])* $Kind:ident { $( $(#[$vdoc:meta])* $variant:ident = $tag:literal, )* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $Kind {
            $( $(#[$vdoc])* $variant, )*
            /// A type byte the protocol does not define in this direction.
            Unknown(u8),
        }

        impl $Kind {
            /// The kind of a message with type byte `tag`.
            pub const fn of(tag: u8) -> $Kind {
                match tag {
                    $( $tag => $Kind::$variant, )*
                    other => $Kind::Unknown(other),
                }
            }

            /// The type byte.
            pub const fn tag(self) -> u8 {
                match self {
                    $( $Kind::$variant => $tag, )*
                    $Kind::Unknown(tag) => tag,
                }
            }
        }
    };
}

kinds! {
    /// A message a client sends after startup.
    FrontendKind {
        /// Bind.
        Bind = b'B',
        /// Close (a statement or a portal).
        Close = b'C',
        /// CopyData.
        CopyData = b'd',
        /// CopyDone.
        CopyDone = b'c',
        /// CopyFail.
        CopyFail = b'f',
        /// Describe (a statement or a portal).
        Describe = b'D',
        /// Execute.
        Execute = b'E',
        /// Flush.
        Flush = b'H',
        /// FunctionCall.
        FunctionCall = b'F',
        /// Parse.
        Parse = b'P',
        /// PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse.
        Password = b'p',
        /// Query (the simple protocol).
        Query = b'Q',
        /// Sync.
        Sync = b'S',
        /// Terminate.
        Terminate = b'X',
    }
}

kinds! {
    /// A message a server sends.
    BackendKind {
        /// Authentication requests.
        Authentication = b'R',
        /// BackendKeyData.
        BackendKeyData = b'K',
        /// BindComplete.
        BindComplete = b'2',
        /// CloseComplete.
        CloseComplete = b'3',
        /// CommandComplete.
        CommandComplete = b'C',
        /// CopyBothResponse.
        CopyBothResponse = b'W',
        /// CopyData.
        CopyData = b'd',
        /// CopyDone.
        CopyDone = b'c',
        /// CopyInResponse.
        CopyInResponse = b'G',
        /// CopyOutResponse.
        CopyOutResponse = b'H',
        /// DataRow.
        DataRow = b'D',
        /// EmptyQueryResponse.
        EmptyQueryResponse = b'I',
        /// ErrorResponse.
        ErrorResponse = b'E',
        /// FunctionCallResponse.
        FunctionCallResponse = b'V',
        /// NegotiateProtocolVersion.
        NegotiateProtocolVersion = b'v',
        /// NoData.
        NoData = b'n',
        /// NoticeResponse.
        NoticeResponse = b'N',
        /// NotificationResponse.
        NotificationResponse = b'A',
        /// ParameterDescription.
        ParameterDescription = b't',
        /// ParameterStatus.
        ParameterStatus = b'S',
        /// ParseComplete.
        ParseComplete = b'1',
        /// PortalSuspended.
        PortalSuspended = b's',
        /// ReadyForQuery.
        ReadyForQuery = b'Z',
        /// RowDescription.
        RowDescription = b'T',
    }
}

impl Frame {
    /// What this frame is, read as a client's message.
    pub fn frontend(&self) -> FrontendKind {
        FrontendKind::of(self.tag())
    }

    /// What this frame is, read as a server's message.
    pub fn backend(&self) -> BackendKind {
        BackendKind::of(self.tag())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_differ_by_direction() {
        for tag in 0..=u8::MAX {
            assert_eq!(FrontendKind::of(tag).tag(), tag);
            assert_eq!(BackendKind::of(tag).tag(), tag);
        }
        assert_eq!(FrontendKind::of(b'D'), FrontendKind::Describe);
        assert_eq!(BackendKind::of(b'D'), BackendKind::DataRow);
        assert_eq!(FrontendKind::of(b'S'), FrontendKind::Sync);
        assert_eq!(BackendKind::of(b'S'), BackendKind::ParameterStatus);
        assert_eq!(FrontendKind::of(b'Z'), FrontendKind::Unknown(b'Z'));
    }
}
