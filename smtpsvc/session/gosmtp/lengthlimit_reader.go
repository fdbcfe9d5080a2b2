package smtp

import (
	"bytes"
	"errors"
	"io"
	"time"
)

var ErrTooLongLine = errors.New("smtp: too long a line in input stream")

// lineLimitReader reads from the underlying Reader but restricts
// line length of lines in input stream to a certain length.
//
// If line length exceeds the limit - Read returns ErrTooLongLine
type lineLimitReader struct {
	R         io.Reader
	LineLimit int

	curLineLength int
	// ds2mb patch: when > 0, each Read first moves R's read deadline this
	// far ahead (Server.CommandTimeout for DATA: an inactivity timeout).
	idle time.Duration
}

func (r *lineLimitReader) Read(b []byte) (int, error) {
	if r.curLineLength > r.LineLimit && r.LineLimit > 0 {
		return 0, ErrTooLongLine
	}

	if r.idle > 0 {
		if dl, ok := r.R.(interface{ SetReadDeadline(time.Time) error }); ok {
			dl.SetReadDeadline(time.Now().Add(r.idle))
		}
	}
	n, err := r.R.Read(b)
	if err != nil {
		return n, err
	}

	if r.LineLimit == 0 {
		return n, nil
	}

	// ds2mb patch: the same count as upstream's loop over every byte
	// (a line feed starts the next line at 1), found with IndexByte.
	for p := b[:n]; ; {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			r.curLineLength += len(p)
			break
		}
		if r.curLineLength += i; r.curLineLength > r.LineLimit {
			return 0, ErrTooLongLine // and every later Read, as upstream
		}
		r.curLineLength, p = 1, p[i+1:]
	}
	if r.curLineLength > r.LineLimit {
		return 0, ErrTooLongLine
	}

	return n, nil
}
