#!/usr/bin/env bash
# deploy/kafka/start-scram.sh — the compose Kafka (apache/kafka image): one KRaft
# broker+controller with SASL/SCRAM-SHA-512 on every client listener and the
# StandardAuthorizer, as the security tests run it (deploy/local/kafka with
# KAFKA_SASL=1 KAFKA_AUTHORIZER=1; docs/security.md, Kafka).
#
# Why a script and not the image's KAFKA_* variables: SCRAM credentials must exist
# before the broker talks to itself over SASL, so they are written into the metadata
# at format time (`kafka-storage.sh format --add-scram`), which the image's own start
# script does not offer.
#
# Listeners: INTERNAL (kafka:9092, the compose network) and HOST (localhost:29092,
# published on the host's 127.0.0.1 only) are SASL_PLAINTEXT/SCRAM-SHA-512; the KRaft
# controller listener is PLAINTEXT but bound to the container's own loopback, so only
# the broker itself reaches it (User:ANONYMOUS is a super user for that reason only).
# Users: `admin` (super user: topics, ACLs, the simulator) and `tierstream` (the
# worker: only the ACLs `tierstream topics create --grant-user tierstream` grants).
#
# Environment (required): KAFKA_ADMIN_PASSWORD, KAFKA_WORKER_PASSWORD. The users are
# made when the data volume is formatted, i.e. on the first start; to change a
# password later use kafka-configs.sh --alter --add-config 'SCRAM-SHA-512=[...]'.
set -euo pipefail

: "${KAFKA_ADMIN_PASSWORD:?set KAFKA_ADMIN_PASSWORD (deploy/.env.example)}"
: "${KAFKA_WORKER_PASSWORD:?set KAFKA_WORKER_PASSWORD (deploy/.env.example)}"
for pw in "$KAFKA_ADMIN_PASSWORD" "$KAFKA_WORKER_PASSWORD"; do
    # embedded in a JAAS line and a --add-scram argument
    [[ "$pw" =~ ^[A-Za-z0-9._~-]{12,}$ ]] || {
        echo "kafka: passwords must be 12+ characters of [A-Za-z0-9._~-]" >&2
        exit 2
    }
done

KAFKA_HOME="${KAFKA_HOME:-/opt/kafka}"
DATA_DIR="${KAFKA_DATA_DIR:-/var/lib/kafka/data}"
CONF="${KAFKA_CONF:-/tmp/tierstream-server.properties}"
ADMIN_CONF="${KAFKA_ADMIN_CONF:-/tmp/tierstream-admin.properties}"
INTERNAL_PORT="${KAFKA_INTERNAL_PORT:-9092}"
HOST_PORT="${KAFKA_HOST_PORT:-29092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
ADVERTISED_INTERNAL="${KAFKA_ADVERTISED_INTERNAL:-kafka:$INTERNAL_PORT}"
ADVERTISED_HOST="${KAFKA_ADVERTISED_HOST:-localhost:$HOST_PORT}"
SCRAM_LOGIN='org.apache.kafka.common.security.scram.ScramLoginModule required'

umask 077 # the files below hold the admin password
cat >"$CONF" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=INTERNAL://:$INTERNAL_PORT,HOST://:$HOST_PORT,CONTROLLER://localhost:$CONTROLLER_PORT
advertised.listeners=INTERNAL://$ADVERTISED_INTERNAL,HOST://$ADVERTISED_HOST
listener.security.protocol.map=INTERNAL:SASL_PLAINTEXT,HOST:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=INTERNAL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.internal.scram-sha-512.sasl.jaas.config=$SCRAM_LOGIN username="admin" password="$KAFKA_ADMIN_PASSWORD";
listener.name.host.scram-sha-512.sasl.jaas.config=$SCRAM_LOGIN;
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
log.dirs=$DATA_DIR
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
CONF

# for the health check (kafka-broker-api-versions.sh --command-config)
cat >"$ADMIN_CONF" <<CONF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$SCRAM_LOGIN username="admin" password="$KAFKA_ADMIN_PASSWORD";
CONF

cluster_id="$("$KAFKA_HOME/bin/kafka-storage.sh" random-uuid)"
# --ignore-formatted: a volume formatted before keeps its cluster id and its users
"$KAFKA_HOME/bin/kafka-storage.sh" format -t "$cluster_id" -c "$CONF" --ignore-formatted \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$KAFKA_ADMIN_PASSWORD]" \
    --add-scram "SCRAM-SHA-512=[name=tierstream,password=$KAFKA_WORKER_PASSWORD]"
exec "$KAFKA_HOME/bin/kafka-server-start.sh" "$CONF"
