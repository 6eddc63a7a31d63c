// Every reply text tern sends, in one place (SPEC.md §3 is the contract for these
// texts; tests compare them to the letter). Replies that carry a host name, an
// address or an id are functions; the rest are constants.
#pragma once

#include <cstdint>
#include <string_view>

#include "smtp/reply.h"

namespace tern::smtp::replies {

// Session
Reply greeting(std::string_view host, std::string_view date);      // 220
Reply helo_ok(std::string_view host, std::string_view client_ip);  // 250
inline const Reply kQuit{221, "2.0.0", "Service closing transmission channel"};
inline const Reply kReset{250, "2.0.0", "Resetting"};
inline const Reply kNoop{250, "2.0.0", "OK"};
inline const Reply kInvalidDomain{501, "5.5.4", "Invalid domain name"};
inline const Reply kUnrecognized{500, "5.3.3", "Unrecognized command"};
inline const Reply kLineTooLong{500, "5.5.2", "Line too long"};
inline const Reply kBadSequence{503, "5.5.1", "Bad sequence of commands"};
inline const Reply kSyntaxError{501, "5.5.4", "Syntax error in parameters or arguments"};
inline const Reply kNotImplemented{502, "5.5.1", "Command not implemented"};
inline const Reply kTooManyErrors{
    421, "4.7.0", "Too many errors on this connection, closing transmission channel"};
inline const Reply kServiceNotAvailable{421, "4.3.2",
                                        "Service not available, closing transmission channel"};
// Connection limits (SPEC §3; Exchange's texts for MaxInboundConnectionPerSource
// and MaxInboundConnection): the client is told before the connection closes.
inline const Reply kTooManyConnectionsFromSource{
    421, "4.3.2",
    "The maximum number of concurrent connections has exceeded a limit, closing transmission "
    "channel"};
inline const Reply kTooManyConnections{
    421, "4.3.2",
    "The maximum number of concurrent server connections has exceeded a limit, closing "
    "transmission channel"};
Reply timed_out(std::string_view host);  // 421 4.4.2
Reply help();                            // 214
inline const Reply kVrfy{252, "2.1.5",
                         "Cannot VRFY user, but will accept message and attempt delivery"};

// MAIL
inline const Reply kSenderOk{250, "2.1.0", "Sender OK"};
inline const Reply kInvalidSender{550, "5.1.7", "Invalid address"};
inline const Reply kNestedMail{503, "5.5.1", "Sender already specified"};
inline const Reply kNotAuthenticated{530, "5.7.1", "Client was not authenticated"};
inline const Reply kMustStartTls{530, "5.7.0", "Must issue a STARTTLS command first"};
inline const Reply kUnsupportedParameter{555, "5.5.4", "Unsupported parameter"};
inline const Reply kInvalidParameter{501, "5.5.4", "Invalid parameter syntax"};
inline const Reply kSendAsDenied{550, "5.7.60",
                                 "Client does not have permissions to send as this sender"};
inline const Reply kUtf8NotDeclared{553, "5.6.7",
                                    "Non-ASCII address requires the SMTPUTF8 parameter"};
inline const Reply kSenderNotUtf8{553, "5.1.7", "Invalid address: not valid UTF-8"};
inline const Reply kRecipientNotUtf8{553, "5.1.3", "Invalid address: not valid UTF-8"};

// RCPT
inline const Reply kRecipientOk{250, "2.1.5", "Recipient OK"};
inline const Reply kInvalidRecipient{501, "5.1.3", "Invalid address"};
inline const Reply kUserUnknown{550, "5.1.1", "User unknown"};
inline const Reply kRelayDenied{550, "5.7.54", "Unable to relay recipient in non-accepted domain"};
inline const Reply kTooManyRecipients{452, "4.5.3", "Too many recipients"};

// DATA / BDAT
inline const Reply kStartMailInput{354, "", "Start mail input; end with <CRLF>.<CRLF>"};
inline const Reply kMessageTooBig{552, "5.3.4", "Message size exceeds fixed maximum message size"};
inline const Reply kInsufficientStorage{452, "4.3.1", "Insufficient system storage"};
inline const Reply kDataLineTooLong{500, "5.5.2", "Line too long"};
inline const Reply kRoutingLoop{554, "5.4.6", "Routing loop detected"};
inline const Reply kBdatAfterData{503, "5.5.1", "Bad sequence of commands"};
inline const Reply kBinaryNeedsBdat{503, "5.5.1", "BINARYMIME requires BDAT"};
inline const Reply kLocalError{451, "4.3.0", "Local error in processing, try again later"};
Reply queued(std::string_view message_id, std::uint64_t internal_id, std::string_view host);
Reply chunk_received(std::uint64_t octets);  // 250 2.0.0 for a BDAT chunk that is not LAST
// SPEC §3: the message fails DMARC and its domain publishes p=reject (RFC 7489 §6.6.2).
Reply dmarc_reject(std::string_view domain);

// STARTTLS / AUTH (RFC 3207, RFC 4954)
inline const Reply kTlsReady{220, "2.0.0", "SMTP server ready"};
inline const Reply kTlsNotAvailable{454, "4.7.0", "TLS not available due to temporary reason"};
inline const Reply kAuthOk{235, "2.7.0", "Authentication successful"};
inline const Reply kAuthFailed{535, "5.7.3", "Authentication unsuccessful"};
inline const Reply kAuthUnknownMechanism{504, "5.7.4", "Unrecognized authentication type"};
inline const Reply kAuthAlready{503, "5.5.1", "Already authenticated"};
inline const Reply kAuthCancelled{501, "5.0.0", "Authentication cancelled"};
inline const Reply kAuthBadBase64{501, "5.5.2", "Cannot decode response"};
inline const Reply kAuthNeedsTls{538, "5.7.11",
                                 "Encryption required for requested authentication mechanism"};

}  // namespace tern::smtp::replies
