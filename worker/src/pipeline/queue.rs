//! RabbitMQ topology and publishing with confirms.
//!
//! Queues (all durable, on the default exchange, routed by name):
//! - `<prefix>.jobs` — work; messages are persistent job ids. A rejected message dead-letters
//!   into `<prefix>.dead`.
//! - `<prefix>.delay.<ms>` — one per retry delay tier. A per-message TTL only expires at the head
//!   of a queue, so each tier is its own queue with a queue-level TTL that dead-letters back
//!   into the work queue.
//! - `<prefix>.dead` — bounded (drop-head) record of what could not be processed.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("broker refused the message (nack)")]
    Nacked,
    #[error("broker returned the message: {0}")]
    Returned(String),
}

/// Names and shapes of the queues one installation uses.
#[derive(Clone, Debug)]
pub struct Topology {
    pub prefix: String,
    pub delay_tiers: Vec<Duration>,
    /// `x-expires` for every queue: set in tests so a killed run leaves nothing behind.
    pub expires: Option<Duration>,
    pub dead_max_length: u32,
}

impl Topology {
    pub fn new(prefix: &str, delay_tiers: Vec<Duration>) -> Topology {
        Topology {
            prefix: prefix.to_owned(),
            delay_tiers,
            expires: None,
            dead_max_length: 10_000,
        }
    }

    pub fn work_queue(&self) -> String {
        format!("{}.jobs", self.prefix)
    }

    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    pub fn delay_queue(&self, tier: Duration) -> String {
        format!("{}.delay.{}", self.prefix, tier.as_millis())
    }

    fn args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if let Some(expires) = self.expires {
            args.insert(
                "x-expires".into(),
                AMQPValue::LongLongInt(expires.as_millis() as i64),
            );
        }
        args
    }

    /// Declare every queue (idempotent).
    pub async fn declare(&self, channel: &Channel) -> Result<(), QueueError> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let mut dead = self.args();
        dead.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(self.dead_max_length as i64),
        );
        dead.insert(
            "x-overflow".into(),
            AMQPValue::LongString("drop-head".into()),
        );
        channel
            .queue_declare(self.dead_queue().into(), durable, dead)
            .await?;

        let mut work = self.args();
        work.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        work.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(self.dead_queue().into()),
        );
        channel
            .queue_declare(self.work_queue().into(), durable, work)
            .await?;

        for tier in &self.delay_tiers {
            let mut delay = self.args();
            delay.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(tier.as_millis() as i64),
            );
            delay.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString("".into()),
            );
            delay.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(self.work_queue().into()),
            );
            channel
                .queue_declare(self.delay_queue(*tier).into(), durable, delay)
                .await?;
        }
        Ok(())
    }
}

pub async fn connect(url: &str) -> Result<Connection, QueueError> {
    let properties = ConnectionProperties::default().with_connection_name("pma-sso".into());
    Ok(Connection::connect(url, properties).await?)
}

/// A channel in confirm mode: `publish` returns only once the broker has taken responsibility
/// for the message (persisted, routed to a queue).
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    pub async fn new(connection: &Connection) -> Result<Publisher, QueueError> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Publisher { channel })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publish persistently to `queue` with `mandatory`, so a missing queue is an error rather
    /// than a silent drop.
    pub async fn publish(
        &self,
        queue: &str,
        body: &[u8],
        headers: FieldTable,
    ) -> Result<(), QueueError> {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(ShortString::from("application/json"))
            .with_headers(headers);
        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await?
            .await?;
        if confirm.is_nack() {
            return Err(QueueError::Nacked);
        }
        if let Some(returned) = confirm.take_message() {
            return Err(QueueError::Returned(format!(
                "{} {}",
                returned.reply_code, returned.reply_text
            )));
        }
        Ok(())
    }
}

/// A header table holding one string, e.g. the reason a message was dead-lettered.
pub fn header(name: &str, value: &str) -> FieldTable {
    let mut table = FieldTable::default();
    table.insert(name.into(), AMQPValue::LongString(LongString::from(value)));
    table
}
