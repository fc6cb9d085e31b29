package cluster

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/memberlist"

	"github.com/interlockraft/interlock/transport"
)

// Gossip key rotation, modelled on Serf's key manager: the same change is
// made on every live member, and the answer counts what each member holds.
// memberlist v0.6.0 has a keyring but no way to change it cluster-wide, so
// the change travels as an RPC on the Raft/RPC port. That port may be
// plaintext, so each request is sealed (AES-GCM) with a key of the
// sender's keyring and a member acts only on a request it can open with a
// key of its own: only a holder of a current gossip key can change the
// keys, as only one can join gossip. Answers are sealed the same way,
// since a listing carries keys.

// methodKeyring changes or lists the receiving node's gossip keyring. Its
// value leaves room below it for other methods.
const methodKeyring transport.Method = 10

// keyringOp is what a keyring request asks for.
type keyringOp byte

const (
	opListKeys keyringOp = iota + 1
	opInstallKey
	opUseKey
	opRemoveKey
)

func (o keyringOp) String() string {
	return [...]string{"", "list", "install", "use", "remove"}[o]
}

// KeyringResult is what each live member answered to a keyring call.
type KeyringResult struct {
	// Members is how many live members were asked, this node included.
	Members int

	// Errors maps the name of each member that failed to why.
	Errors map[string]string

	// Keys counts, for each key (base64, standard encoding), the members
	// that hold it in their keyring after the call.
	Keys map[string]int

	// PrimaryKeys counts, for each key, the members that encrypt with it.
	PrimaryKeys map[string]int
}

// InstallKey adds key (16, 24 or 32 bytes) to the gossip keyring of every
// live member. Members then accept gossip encrypted with it but still
// encrypt with their primary key; call UseKey once every member holds it.
// It returns ErrKeyring, with the result, if any member failed. Safe for
// concurrent use, though concurrent rotations make little sense.
func (n *Node) InstallKey(ctx context.Context, key []byte) (KeyringResult, error) {
	if err := memberlist.ValidateKey(key); err != nil {
		return KeyringResult{}, fmt.Errorf("%w: %v", ErrKeyring, err)
	}
	return n.keyringCall(ctx, opInstallKey, key)
}

// UseKey makes key the primary gossip key, the one every live member
// encrypts with. It refuses, changing nothing, unless every live member
// already holds key (see InstallKey). Safe for concurrent use.
func (n *Node) UseKey(ctx context.Context, key []byte) (KeyringResult, error) {
	list, err := n.ListKeys(ctx)
	if err != nil {
		return list, err
	}
	if held := list.Keys[encodeKey(key)]; held != list.Members {
		return list, fmt.Errorf("%w: only %d of %d members hold the key; InstallKey it first", ErrKeyring, held, list.Members)
	}
	return n.keyringCall(ctx, opUseKey, key)
}

// RemoveKey removes key from the gossip keyring of every live member. It
// refuses, changing nothing, while any member still uses key as its
// primary (see UseKey). A node that holds only a removed key can no longer
// join or gossip. Safe for concurrent use.
func (n *Node) RemoveKey(ctx context.Context, key []byte) (KeyringResult, error) {
	list, err := n.ListKeys(ctx)
	if err != nil {
		return list, err
	}
	if p := list.PrimaryKeys[encodeKey(key)]; p > 0 {
		return list, fmt.Errorf("%w: %d members still encrypt with the key; UseKey another key first", ErrKeyring, p)
	}
	return n.keyringCall(ctx, opRemoveKey, key)
}

// ListKeys asks every live member which gossip keys it holds. Safe for
// concurrent use.
func (n *Node) ListKeys(ctx context.Context) (KeyringResult, error) {
	return n.keyringCall(ctx, opListKeys, nil)
}

func encodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// keyringCall runs op on every live member at once and tallies the answers.
func (n *Node) keyringCall(ctx context.Context, op keyringOp, key []byte) (KeyringResult, error) {
	ring := n.gossip.keyring
	if ring == nil {
		return KeyringResult{}, ErrGossipNotEncrypted
	}
	req, err := sealKeyring(ring.GetPrimaryKey(), n.keyringAAD(), append([]byte{byte(op)}, key...))
	if err != nil {
		return KeyringResult{}, err
	}
	res := KeyringResult{Errors: map[string]string{}, Keys: map[string]int{}, PrimaryKeys: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range n.members() {
		if m.Status != StatusAlive || m.RaftAddr == "" {
			continue
		}
		res.Members++
		wg.Add(1)
		go func() {
			defer wg.Done()
			var keys [][]byte
			var err error
			if m.Name == n.cfg.NodeName {
				keys, err = n.applyKeyring(op, key)
			} else {
				keys, err = n.remoteKeyring(ctx, m.RaftAddr, ring, req)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Errors[m.Name] = err.Error()
				return
			}
			for i, k := range keys {
				res.Keys[encodeKey(k)]++
				if i == 0 {
					res.PrimaryKeys[encodeKey(k)]++
				}
			}
		}()
	}
	wg.Wait()
	if len(res.Errors) > 0 {
		names := make([]string, 0, len(res.Errors))
		for name, e := range res.Errors {
			names = append(names, name+": "+e)
		}
		sort.Strings(names)
		return res, fmt.Errorf("%w: %s failed on %d of %d members: %s", ErrKeyring, op, len(res.Errors), res.Members, strings.Join(names, "; "))
	}
	if op != opListKeys {
		n.logger.Info("gossip keyring changed", "op", op.String(), "members", res.Members)
	}
	return res, nil
}

// remoteKeyring sends a sealed request to the member at addr and opens its
// sealed answer.
func (n *Node) remoteKeyring(ctx context.Context, addr string, ring *memberlist.Keyring, req []byte) ([][]byte, error) {
	resp, err := n.rpc.Call(ctx, addr, methodKeyring, req)
	if err != nil {
		return nil, fromRemote(err)
	}
	plain, _, err := openKeyring(ring.GetKeys(), n.keyringAAD(), resp)
	if err != nil {
		return nil, fmt.Errorf("open the answer: %w", err)
	}
	return decodeKeys(plain)
}

// serveKeyring answers methodKeyring.
func (n *Node) serveKeyring(req []byte) ([]byte, error) {
	ring := n.gossip.keyring
	if ring == nil {
		return nil, ErrGossipNotEncrypted
	}
	plain, key, err := openKeyring(ring.GetKeys(), n.keyringAAD(), req)
	if err != nil {
		n.logger.Warn("refusing a gossip keyring request not sealed with any key of this node's keyring")
		return nil, err
	}
	if len(plain) < 1 {
		return nil, fmt.Errorf("empty keyring request")
	}
	keys, err := n.applyKeyring(keyringOp(plain[0]), plain[1:])
	if err != nil {
		return nil, err
	}
	return sealKeyring(key, n.keyringAAD(), encodeKeys(keys))
}

// applyKeyring performs op on this node's keyring and returns its keys
// afterwards, the primary first.
func (n *Node) applyKeyring(op keyringOp, key []byte) ([][]byte, error) {
	ring := n.gossip.keyring
	if ring == nil {
		return nil, ErrGossipNotEncrypted
	}
	var err error
	switch op {
	case opListKeys:
	case opInstallKey:
		err = ring.AddKey(key)
	case opUseKey:
		err = ring.UseKey(key)
	case opRemoveKey:
		err = ring.RemoveKey(key)
	default:
		err = fmt.Errorf("unknown keyring operation %d; is every node on the same Interlock version?", op)
	}
	if err != nil {
		return nil, err
	}
	return ring.GetKeys(), nil
}

// keyringAAD binds sealed keyring messages to this cluster.
func (n *Node) keyringAAD() []byte { return []byte("interlock keyring " + n.cfg.ClusterName) }

// errNotSealed means no key of the keyring opens a keyring message.
var errNotSealed = errors.New("keyring message is not sealed with any key of this node's gossip keyring")

func sealKeyring(key, aad, plain []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(nonce, nonce, plain, aad), nil
}

// openKeyring opens msg with the first of keys that can, and returns it.
func openKeyring(keys [][]byte, aad, msg []byte) (plain, key []byte, err error) {
	for _, k := range keys {
		gcm, err := newGCM(k)
		if err != nil || len(msg) < gcm.NonceSize() {
			continue
		}
		ns := gcm.NonceSize()
		if plain, err := gcm.Open(nil, msg[:ns], msg[ns:], aad); err == nil {
			return plain, k, nil
		}
	}
	return nil, nil, errNotSealed
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// encodeKeys lays keys out as a length byte and the key, each.
func encodeKeys(keys [][]byte) []byte {
	var b bytes.Buffer
	for _, k := range keys {
		b.WriteByte(byte(len(k)))
		b.Write(k)
	}
	return b.Bytes()
}

func decodeKeys(b []byte) ([][]byte, error) {
	var keys [][]byte
	for len(b) > 0 {
		l := int(b[0])
		if len(b) < 1+l {
			return nil, fmt.Errorf("truncated key list")
		}
		keys = append(keys, slices.Clone(b[1:1+l]))
		b = b[1+l:]
	}
	return keys, nil
}
