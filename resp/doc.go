// Package resp is the Redis wire protocol as Redis 7.0 speaks it to its
// clients: requests in, replies out, RESP2 or RESP3.
//
// A connection handler owns one Reader and one Writer per connection. The
// Reader parses requests, multibulk or inline, and returns each command's
// arguments; the Writer writes replies, from a messages.Reply or through
// fast paths, into a buffer that the handler flushes. The package does no
// networking beyond reading an io.Reader and writing an io.Writer; deadlines,
// authentication and command dispatch are the handler's.
//
// # Requests
//
// A multibulk request is what every client library sends:
//
//	*2\r\n$3\r\nGET\r\n$1\r\nk\r\n
//
// An inline request is a line ended by LF or CRLF, as typed into telnet; it
// is any request that does not start with '*':
//
//	SET k "a b"\r\n
//
// Inline arguments are split as Redis's sdssplitargs does: blanks separate
// them; "double quotes" take the escapes \n \r \t \b \a \\ \" and \xHH (any
// other escaped byte is itself); 'single quotes' only \'; a closing quote
// must be followed by a blank or the end of the line, or the request fails
// with "unbalanced quotes". A quote may open mid-argument: a"b c" is `ab c`.
//
// Empty requests (a blank line, *0, *-1) are skipped, as in Redis:
// ReadCommand never returns an empty command.
//
// The Reader follows Redis where it is lenient: the byte after a header
// line's CR is not checked to be LF, and the two bytes after an argument
// are not checked to be CRLF, they are skipped. It follows it where it is
// strange too: Redis looks for a line's end with strchr, which stops at a
// NUL byte, so a header line or an inline request with a NUL before its end
// never ends; it runs into the line limit (too big ... error) or the end of
// the connection.
//
// # Limits
//
// Limits holds the bounds; its zero value, and DefaultLimits, are Redis
// 7.0's (networking.c, server.h, config.c):
//
//	MaxBulkLen       512MB    proto-max-bulk-len         "invalid bulk length"
//	MaxMultibulkLen  INT_MAX  processMultibulkBuffer     "invalid multibulk length"
//	MaxInlineLen     64KB     PROTO_INLINE_MAX_SIZE      "too big inline request",
//	                                                     "too big mbulk count string",
//	                                                     "too big bulk count string"
//	MaxQueryBuffer   1GB      client-query-buffer-limit  closed without a reply
//
// Redis 6.2 and older capped the multibulk count at 1024*1024; 7.0 takes
// up to INT_MAX. A connection that has to authenticate first (see
// SetAuthRequired) is held to 10 arguments ("unauthenticated multibulk
// length") of at most 16384 bytes ("unauthenticated bulk length"), as in
// Redis 7.0.
//
// Lengths are checked in the order Redis checks them, and the texts are
// Redis's. Two limits differ in how they are counted. A line is too big
// when its first MaxInlineLen+1 bytes hold no end, wherever the reads split
// it; Redis checks after each read(2), so a line a little over the limit
// may pass or fail there depending on how it arrived. MaxQueryBuffer
// bounds the bytes one request declares, headers included, and fails as
// soon as a $<len> takes the request over it; Redis bounds the bytes it has
// read and not yet parsed, which is about one argument: it too closes on an
// argument over the limit, but lets through a request of several arguments
// that add up to more.
//
// No length header makes the Reader allocate by itself: an argument of
// $536870912 starts with a 64KB allocation, which doubles as the bytes
// arrive. Arguments under 32KB are copied into an arena reused from command
// to command; bigger ones are read straight into their own memory. Memory
// is thus bounded by a constant plus a small multiple of the bytes
// received. On the hot path (pipelined commands with small arguments)
// ReadCommand allocates nothing: the arguments it returns live in memory
// that the next call reuses.
//
// # Errors
//
// Every error ReadCommand returns ends the connection, as in Redis, which
// closes after a protocol error's reply (Error.Fatal is always true). Later
// calls return the same error.
//
//   - io.EOF: the client closed between requests.
//   - io.ErrUnexpectedEOF: the client closed in the middle of a request.
//   - *Error: a protocol error. Its Reply is the text Redis sends, e.g.
//     "ERR Protocol error: invalid bulk length"; ProtocolError returns it.
//     ErrQueryBufferLimit has no reply: Redis closes without one.
//   - anything else: the io.Reader's error (a deadline, a reset).
//
// # Replies
//
// WriteReply writes a messages.Reply in RESP2 or RESP3. RESP3 types are
// written in RESP2 as Redis writes them: a map as a flat array of keys and
// values, a set as an array, a double as a bulk string, a boolean as :1 or
// :0, a verbatim string as a bulk string, a null as $-1 (or *-1 for a null
// array). Doubles are formatted as Redis 7.0 formats them: printf's %.17g
// (0.1 is 0.10000000000000001), and inf, -inf, nan. Status and error texts
// have CR and LF replaced by spaces, so a reply can never break the stream.
// A nil Reply is written as a null.
//
// Write errors are sticky: once the connection fails, every later write
// and Flush returns the error.
//
// The hottest replies have fast paths that build no Reply: WriteOK,
// WriteBulk, WriteInt, WriteNullBulk, WriteError, and the aggregate headers
// WriteArrayLen, WriteMapLen, WriteSetLen. The protocol of those is the
// Writer's own, set by SetProto when HELLO switches it.
//
// # A connection loop
//
// Replies are buffered; a connection that pipelines commands gets its
// replies in as few writes as possible when the handler flushes only when
// the Reader is about to wait for the client, which is what OnWait is for:
//
//	func serve(conn net.Conn) {
//		defer conn.Close()
//		rd := resp.NewReader(conn, resp.Limits{})
//		wr := resp.NewWriter(conn)
//		rd.OnWait(wr.Flush) // reply before waiting for more input
//		rd.SetAuthRequired(requirePass != "")
//		for {
//			args, err := rd.ReadCommand()
//			if err != nil {
//				if reply, ok := resp.ProtocolError(err); ok {
//					wr.WriteError(reply)
//				}
//				wr.Flush()
//				return
//			}
//			// args are valid until the next ReadCommand: copy what is kept.
//			switch strings.ToUpper(string(args[0])) {
//			case "PING":
//				wr.WriteStatus("PONG")
//			case "AUTH":
//				... // on success, lift the unauthenticated limits:
//				rd.SetAuthRequired(false)
//			case "HELLO":
//				wr.SetProto(3) // then write HELLO's map, in RESP3
//				...
//			default:
//				wr.WriteReply(execute(args), 0)
//			}
//		}
//	}
//
// Without OnWait, a handler flushes when Buffered is 0 after a command; but
// a client may have sent the first bytes of its next command only, and wait
// for the replies before sending the rest, so such a handler must also
// flush before blocking some other way (a read deadline, a timer).
//
// A handler that queues replies to be written later (commands that run
// elsewhere) passes each reply's protocol to WriteReply explicitly: the
// protocol the connection had when the command was read, which a later
// HELLO does not change.
//
// # Verification
//
// The error texts, the limits, the inline splitting and the reply encodings
// are compared byte for byte with a redis-server 7.0 by the package's tests
// (redis_test.go; they skip when redis-server is not on PATH), and
// FuzzReadCommand checks that any input parses the same however it is
// split into reads, re-encodes to the same commands, and allocates in
// proportion to its size.
package resp
