# Shell functions that scripts/postgres.sh, scripts/redis.sh and
# scripts/conformance.sh share. Sourced, after the script defines die.

# port_in_use PORT: whether something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port FIRST SETTING: prints the port that the environment variable
# SETTING names, dying if it is in use; without SETTING, the first free port
# of FIRST to FIRST+99.
pick_port() {
  local first=$1 setting=$2 port
  if [ -n "${!setting:-}" ]; then
    port=${!setting}
    ! port_in_use "$port" || die "port $port ($setting) is in use; choose another"
  else
    port=$first
    while port_in_use "$port"; do
      port=$((port + 1))
      [ "$port" -lt $((first + 100)) ] || die "no free port in $first-$((first + 99)); set $setting"
    done
  fi
  echo "$port"
}
