package proto

// ClassicRead is what the original classic console client reads at once: it
// calls recv(fd, buf, 1024, 0) into a zeroed buffer and parses the buffer as
// one JSON object (its JSON parser stops at the first NUL byte).
const ClassicRead = 1024

// ClassicRecordLen is the size of the classic record that carries an object
// of n bytes (its "\n" included): n rounded up to a multiple of ClassicRead,
// with room for at least one NUL.
func ClassicRecordLen(n int) int {
	return (n + ClassicRead) / ClassicRead * ClassicRead
}

// AppendClassicRecord appends obj (one object and its "\n") padded with NUL
// bytes to ClassicRecordLen(len(obj)).
//
// Every object sent to a classic session is one record, so the stream is a
// sequence of ClassicRead-byte slots, each holding exactly one object.
// A read of at most ClassicRead bytes that starts at a slot boundary and
// returns a whole slot sees exactly one object and its NUL terminator,
// however many records had arrived before it: two objects in one read can
// no longer happen. Readers that treat the stream as JSON values separated
// by NUL or whitespace (every other client) simply skip the padding.
func AppendClassicRecord(b, obj []byte) []byte {
	n := ClassicRecordLen(len(obj))
	b = append(b, obj...)
	for range n - len(obj) {
		b = append(b, 0)
	}
	return b
}

// ClassicLoginMax is the longest classic login reply: with its "\n" it
// leaves room for the NUL that ends the original client's one read of
// ClassicRead bytes.
const ClassicLoginMax = ClassicRead - 2

// AppendClassicWithin appends the classic login reply cut to at most max
// bytes, and returns how many of r.Offline it carries (r.Offline[n:] did
// not fit: the server writes them after it). It fills friends, then groups,
// then offline messages, each list up to its first entry that does not fit;
// when everything fits it is AppendClassic.
func (r *LoginReply) AppendClassicWithin(b []byte, max int) ([]byte, int) {
	v := r.classic()
	size := len(appendJSON(nil, &classicLogin{MsgID: LoginAck, ID: r.ID, Name: r.Name}))
	for _, l := range []struct {
		key  string
		list *[]string
	}{{"friends", &v.Friends}, {"groups", &v.Groups}, {"offlinemsg", &v.Offline}} {
		// `,"key":[` entries separated by commas `]`
		add, n := len(l.key)+6, 0
		for _, e := range *l.list {
			k := len(jsonString(e))
			if n > 0 {
				k++
			}
			if size+add+k > max {
				break
			}
			add += k
			n++
		}
		*l.list = (*l.list)[:n]
		if n > 0 {
			size += add
		}
	}
	return appendJSON(b, v), len(v.Offline)
}
