#!/bin/sh
# Makes rootfs.tar, the root filesystem this example imports: Debian's busybox-static
# with its applets, an /etc/passwd and a /tmp. No registry needed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/etc" "$work/tmp" "$work/site"
chmod 1777 "$work/tmp"
cp /bin/busybox "$work/bin/busybox"
for applet in $("$work/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$work/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/site:/bin/false\n' >"$work/etc/passwd"
printf 'root:x:0:\nwww-data:x:33:\n' >"$work/etc/group"
tar -C "$work" -cf "$here/rootfs.tar" .
echo "$here/rootfs.tar"
