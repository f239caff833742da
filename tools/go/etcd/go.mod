// Wrapper module: builds the etcd server binary at a pinned version.
// The server's own go.mod points its sibling modules at local folders, which Go ignores in a
// dependency, so they are pinned here to the same release.
module sovereign.local/tools/etcd

go 1.24

require go.etcd.io/etcd/server/v3 v3.6.5

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v3.6.5
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 v3.6.5
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 v3.6.5
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 v3.6.5
)
