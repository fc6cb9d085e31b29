package fsm

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPrimitivesRoundTrip encodes a sequence of every primitive at its edge
// values and decodes it back.
func TestPrimitivesRoundTrip(t *testing.T) {
	long := strings.Repeat("x", 300) // a length needing a two-byte uvarint
	var e encoder
	for _, v := range []uint64{0, 1, 127, 128, math.MaxUint64} {
		e.uvarint(v)
	}
	for _, v := range []int64{0, -1, 1, math.MinInt64, math.MaxInt64} {
		e.varint(v)
	}
	for _, v := range []int64{0, -1, math.MinInt64, math.MaxInt64} {
		e.fixed64(v)
	}
	for _, s := range []string{"", "a", "héllo\x00", long} {
		e.string(s)
	}
	e.bool(true)
	e.bool(false)
	e.byte(0xab)

	d := decoder{buf: e.buf}
	for _, want := range []uint64{0, 1, 127, 128, math.MaxUint64} {
		if got := d.uvarint(); got != want {
			t.Errorf("uvarint = %d, want %d", got, want)
		}
	}
	for _, want := range []int64{0, -1, 1, math.MinInt64, math.MaxInt64} {
		if got := d.varint(); got != want {
			t.Errorf("varint = %d, want %d", got, want)
		}
	}
	for _, want := range []int64{0, -1, math.MinInt64, math.MaxInt64} {
		if got := d.fixed64(); got != want {
			t.Errorf("fixed64 = %d, want %d", got, want)
		}
	}
	for _, want := range []string{"", "a", "héllo\x00", long} {
		if got := d.string(); got != want {
			t.Errorf("string = %q, want %q", got, want)
		}
	}
	if !d.bool() || d.bool() {
		t.Errorf("bools did not round trip")
	}
	if got := d.byte(); got != 0xab {
		t.Errorf("byte = %#x, want 0xab", got)
	}
	if d.err != nil || len(d.buf) != 0 {
		t.Errorf("after decoding everything: err %v, %d bytes left", d.err, len(d.buf))
	}
}

func TestDecoderShortInput(t *testing.T) {
	tests := []struct {
		name string
		buf  []byte
		read func(*decoder)
	}{
		{"byte of nothing", nil, func(d *decoder) { d.byte() }},
		{"uvarint of nothing", nil, func(d *decoder) { d.uvarint() }},
		{"uvarint cut mid-way", []byte{0x80}, func(d *decoder) { d.uvarint() }},
		{"uvarint overflowing 64 bits", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, func(d *decoder) { d.uvarint() }},
		{"varint cut mid-way", []byte{0xff}, func(d *decoder) { d.varint() }},
		{"fixed64 of 7 bytes", make([]byte, 7), func(d *decoder) { d.fixed64() }},
		{"string longer than the buffer", []byte{3, 'a', 'b'}, func(d *decoder) { d.string() }},
		{"string with huge length", binary.AppendUvarint(nil, math.MaxUint64), func(d *decoder) { d.string() }},
		{"count above remaining/minElem", []byte{3, 0, 0, 0, 0, 0, 0, 0, 0}, func(d *decoder) { d.count(4) }},
		{"bool of nothing", nil, func(d *decoder) { d.bool() }},
	}
	for _, tt := range tests {
		d := decoder{buf: tt.buf}
		tt.read(&d)
		if !errors.Is(d.err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", tt.name, d.err)
		}
	}
}

func TestDecoderCountLimit(t *testing.T) {
	tests := []struct {
		n, rest, minElem int
		ok               bool
	}{
		{n: 0, rest: 0, minElem: 4, ok: true},
		{n: 2, rest: 8, minElem: 4, ok: true},
		{n: 3, rest: 8, minElem: 4, ok: false},
		{n: 5, rest: 5, minElem: 0, ok: true}, // minElem below 1 means 1
		{n: 6, rest: 5, minElem: 0, ok: false},
	}
	for _, tt := range tests {
		buf := binary.AppendUvarint(nil, uint64(tt.n))
		buf = append(buf, make([]byte, tt.rest)...)
		d := decoder{buf: buf}
		got := d.count(tt.minElem)
		if tt.ok && (d.err != nil || got != tt.n) {
			t.Errorf("count(%d) of %d with %d bytes left = %d, %v; want %d", tt.minElem, tt.n, tt.rest, got, d.err, tt.n)
		}
		if !tt.ok && (!errors.Is(d.err, ErrMalformed) || got != 0) {
			t.Errorf("count(%d) of %d with %d bytes left = %d, %v; want 0, ErrMalformed", tt.minElem, tt.n, tt.rest, got, d.err)
		}
	}
}

// TestDecoderErrorSticks checks that after the first failure every read
// returns a zero value and the first error is kept.
func TestDecoderErrorSticks(t *testing.T) {
	d := decoder{buf: []byte{5, 'a'}} // string of 5 with 1 byte
	if s := d.string(); s != "" {
		t.Errorf("failed string read returned %q", s)
	}
	first := d.err
	if first == nil || !strings.Contains(first.Error(), "string") {
		t.Fatalf("first error = %v, want a string error", first)
	}
	d.buf = binary.AppendUvarint(nil, 42) // even with valid bytes available
	if v := d.uvarint(); v != 0 {
		t.Errorf("uvarint after an error = %d, want 0", v)
	}
	if d.byte() != 0 || d.varint() != 0 || d.fixed64() != 0 || d.count(1) != 0 {
		t.Errorf("reads after an error returned non-zero values")
	}
	if d.err != first {
		t.Errorf("error changed from %v to %v", first, d.err)
	}
}

func TestClaimsRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		b    ClaimBatch
	}{
		{"no claims", ClaimBatch{Node: "n1"}},
		{"empty node", ClaimBatch{Claims: []Claim{{Job: "a", Tick: 1, At: 2, Deadline: 3}}}},
		{"many", ClaimBatch{Node: "nöde-1", Claims: []Claim{
			{Job: "a", Tick: 1, At: 1_700_000_000_000_000_000, Deadline: 1_700_000_001_000_000_000},
			{Job: "b", Tick: -5, At: -5, Deadline: -4},
			{Job: strings.Repeat("j", 200), Tick: math.MaxInt64, At: math.MinInt64, Deadline: math.MaxInt64},
			{Job: "", Tick: 0, At: 0, Deadline: 0},
		}}},
	}
	for _, tt := range tests {
		buf := EncodeClaims(tt.b)
		d := decoder{buf: buf}
		h, err := readHeader(&d)
		if err != nil || h.Type != CommandClaim || h.Now != 0 {
			t.Errorf("%s: header = %+v, %v; want claim, unstamped", tt.name, h, err)
			continue
		}
		got, err := decodeClaims(&d)
		if err != nil {
			t.Errorf("%s: decodeClaims: %v", tt.name, err)
			continue
		}
		if got.Node != tt.b.Node || !slices.Equal(got.Claims, tt.b.Claims) {
			t.Errorf("%s: round trip = %+v, want %+v", tt.name, got, tt.b)
		}
		if len(d.buf) != 0 {
			t.Errorf("%s: %d bytes left after decoding", tt.name, len(d.buf))
		}
	}
}

func TestRegistrationRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		r    Registration
	}{
		{"empty", Registration{}},
		{"reset only", Registration{Node: "n1", Reset: true}},
		{"adds and removes", Registration{Node: "n2", Add: []string{"a", "b", ""}, Remove: []string{"c"}}},
	}
	for _, tt := range tests {
		d := decoder{buf: EncodeRegistration(tt.r)}
		h, err := readHeader(&d)
		if err != nil || h.Type != CommandRegister {
			t.Errorf("%s: header = %+v, %v; want register", tt.name, h, err)
			continue
		}
		got, err := decodeRegistration(&d)
		if err != nil {
			t.Errorf("%s: decodeRegistration: %v", tt.name, err)
			continue
		}
		if got.Node != tt.r.Node || got.Reset != tt.r.Reset || !slices.Equal(got.Add, tt.r.Add) || !slices.Equal(got.Remove, tt.r.Remove) {
			t.Errorf("%s: round trip = %+v, want %+v", tt.name, got, tt.r)
		}
		if len(d.buf) != 0 {
			t.Errorf("%s: %d bytes left after decoding", tt.name, len(d.buf))
		}
	}
}

func TestStampAndPeekHeader(t *testing.T) {
	times := []time.Time{
		time.Unix(0, 0),
		time.Unix(1_700_000_000, 123_456_789),
		time.Unix(-1, 0), // before the epoch
		time.Unix(0, math.MaxInt64),
	}
	for _, now := range times {
		for _, cmd := range [][]byte{
			EncodeClaims(ClaimBatch{Node: "n", Claims: []Claim{{Job: "a", Tick: 1, At: 1, Deadline: 2}}}),
			EncodeRegistration(Registration{Node: "n", Add: []string{"a"}}),
		} {
			body := slices.Clone(cmd[headerLen:])
			typ := CommandType(cmd[1])
			if err := Stamp(cmd, now); err != nil {
				t.Fatalf("Stamp: %v", err)
			}
			h, err := PeekHeader(cmd)
			if err != nil {
				t.Fatalf("PeekHeader: %v", err)
			}
			if h.Type != typ || h.Now != now.UnixNano() {
				t.Errorf("PeekHeader = %+v, want type %s, now %d", h, typ, now.UnixNano())
			}
			if !slices.Equal(cmd[headerLen:], body) {
				t.Errorf("Stamp changed the body of a %s command", typ)
			}
		}
	}
}

func TestPeekHeaderErrors(t *testing.T) {
	tests := []struct {
		name string
		cmd  []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"nine bytes", make([]byte, 9), ErrMalformed},
		{"version 2", []byte{2, 1, 0, 0, 0, 0, 0, 0, 0, 0}, ErrUnsupportedVersion},
	}
	for _, tt := range tests {
		if _, err := PeekHeader(tt.cmd); !errors.Is(err, tt.want) {
			t.Errorf("%s: PeekHeader error = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestClaimResultRoundTrip(t *testing.T) {
	all := &ClaimResult{Index: math.MaxUint64}
	for r := ReasonGranted; r <= ReasonInvalid; r++ {
		all.Outcomes = append(all.Outcomes, Outcome{Reason: r, Token: uint64(r) * 1000, Holder: "n" + r.String(), At: int64(r) - 3})
	}
	tests := []struct {
		name string
		r    *ClaimResult
	}{
		{"no outcomes", &ClaimResult{Index: 1}},
		{"one granted", &ClaimResult{Index: 42, Outcomes: []Outcome{{Reason: ReasonGranted, Token: 42, Holder: "n1", At: 7}}}},
		{"every reason", all},
		{"extreme values", &ClaimResult{Index: 0, Outcomes: []Outcome{
			{Reason: ReasonTaken, Token: math.MaxUint64, Holder: strings.Repeat("h", 500), At: math.MinInt64},
			{Reason: ReasonExpired, Holder: "", At: math.MaxInt64},
		}}},
	}
	for _, tt := range tests {
		buf := EncodeClaimResult(tt.r)
		got, err := DecodeClaimResult(buf)
		if err != nil {
			t.Errorf("%s: DecodeClaimResult: %v", tt.name, err)
			continue
		}
		if got.Index != tt.r.Index || !slices.Equal(got.Outcomes, tt.r.Outcomes) {
			t.Errorf("%s: round trip = %+v, want %+v", tt.name, got, tt.r)
		}
		// Every strict prefix is truncated and must be rejected.
		for n := range len(buf) {
			if r, err := DecodeClaimResult(buf[:n]); !errors.Is(err, ErrMalformed) || r != nil {
				t.Errorf("%s: DecodeClaimResult of %d/%d bytes = %v, %v; want nil, ErrMalformed", tt.name, n, len(buf), r, err)
			}
		}
	}
}

func TestDecodeClaimResultHugeCount(t *testing.T) {
	buf := binary.AppendUvarint(binary.AppendUvarint(nil, 1), 1<<50)
	buf = append(buf, make([]byte, 16)...)
	if r, err := DecodeClaimResult(buf); !errors.Is(err, ErrMalformed) || r != nil {
		t.Errorf("DecodeClaimResult with a huge count = %v, %v; want nil, ErrMalformed", r, err)
	}
}
