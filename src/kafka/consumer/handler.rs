//! Where each command is handled: decoded, applied to the store, its events published; what
//! became of it is told by the observer (`observer.rs`).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rdkafka::message::{Header, Message, OwnedMessage};
use tracing::Instrument;

use super::drop_order::{DropKey, DropOrder, Lane, Place};
use super::observer::{Answer, Observer};
use crate::clock;
use crate::drop::command::{Action, Command, CommandType, DropRequest, RejectionClass};
use crate::drop::model::{Environment, Location, Millis, TenantRef};
use crate::drop::rules::Refusal;
use crate::equipment::EquipmentService;
use crate::footholds::DataService;
use crate::kafka::events::{EventSink, Events};
use crate::kafka::message::command::{decode, Rejection};
use crate::kafka::message::headers::{
    environment_header, DEAD_LETTER_CLASS, DEAD_LETTER_OFFSET, DEAD_LETTER_PARTITION,
    DEAD_LETTER_REASON, DEAD_LETTER_TOPIC,
};
use crate::kafka::producer::{DeadLetter, Delivery, Publisher};
use crate::metrics::{Landing, Metrics, PartyLookup};
use crate::party::PartyService;
use crate::store::{DropStore, EventOut, LogPosition, Origin};
use crate::trace::SpanExporter;

/// How many bytes of a rejection's reason the log and the dead letter carry: a reason can
/// quote the value (serde quotes strings), and must not make a letter larger than the command.
const REASON_BYTES: usize = 256;

/// A peer a command waits for, beside the partition, before it is applied.
enum Ask {
    /// The equipment service creates an equip `SPAWN`'s equipment (of this item).
    Equipment(EquipmentService, u32),
    /// The data service names the floor a `SPAWN_FROM_CHARACTER`'s drop lands on
    /// (contract-head §5).
    Floor(DataService),
}

/// What applying a command came to.
enum Applied {
    /// The deliveries of its events.
    Done(Vec<Delivery>),
    /// Nothing yet: a meso drop's reservation that the party service must be asked about first
    /// (`Refusal::PartyNotAsked`), as it came.
    NeedsParty(Command),
}

impl Applied {
    /// The deliveries of a command that cannot need the party service (a spawn).
    fn deliveries(self) -> Vec<Delivery> {
        match self {
            Applied::Done(deliveries) => deliveries,
            Applied::NeedsParty(_) => unreachable!("only a reservation waits for the party"),
        }
    }
}

/// A record as read: a command to apply (in its turn, see `Lanes`), or what was done
/// with it already (skipped as another environment's, or rejected).
pub enum Read {
    Command(CommandType, Command),
    Done(Vec<Delivery>),
}

impl Read {
    /// Where the command waits its turn (see `Lanes`): none for a record done.
    pub fn lane(&self) -> Option<Lane> {
        match self {
            Read::Command(_, command) => Some(match &command.action {
                Action::OnDrop(request) => Lane::Drop((command.tenant.clone(), request.drop_id())),
                Action::Spawn(_) => Lane::Spawns(command.tenant.clone(), command.location),
            }),
            Read::Done(_) => None,
        }
    }
}

/// What became of a record: its deliveries now, or a future that yields them.
pub enum Handled {
    Now(Vec<Delivery>),
    Later(Pin<Box<dyn Future<Output = Vec<Delivery>> + Send>>),
}

impl Handled {
    /// `work` as a task of its own, beside the partition: it goes on while the partition task
    /// applies the next commands. (Left to the partition task's polling instead, a wait of
    /// one command for another's turn could hold both.)
    fn beside(work: impl Future<Output = Vec<Delivery>> + Send + 'static) -> Handled {
        let task = tokio::spawn(work);
        Handled::Later(Box::pin(async move {
            match task.await {
                Ok(deliveries) => deliveries,
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                // Cancelled: the runtime is shutting down, and the partition with it.
                Err(_) => Vec::new(),
            }
        }))
    }
}

pub struct Handler {
    pub store: Arc<DropStore>,
    /// Where a change's events go.
    pub events: Events,
    /// Where rejected commands go.
    pub publisher: Publisher,
    pub metrics: Arc<Metrics>,
    pub spans: SpanExporter,
    /// Where equip SPAWNs get their equipment created, when configured.
    pub equipment: Option<EquipmentService>,
    /// Where SPAWN_FROM_CHARACTER drops find the floor they land on, when configured.
    pub floor: Option<DataService>,
    /// The consumer group: with the topic and partition, it names a partition's applied record.
    pub group: String,
    /// The largest record the broker takes (`message.max.bytes`): a dead letter larger than
    /// this is not sent but logged, counted and passed.
    pub max_record_bytes: usize,
    /// This instance's `ATLAS_ENVIRONMENT`: commands of another are not ours, and a drop
    /// spawned without an `ENVIRONMENT` of its own is of this one (contract-head §6).
    pub environment: Option<Environment>,
    /// Where a meso drop's reservation learns who shares it, when configured.
    pub parties: Option<PartyService>,
    /// Commands on a drop queued behind one that waits for the party service.
    pub drop_order: DropOrder,
}

/// The first `limit` bytes of `text`, cut at a character boundary, marked when cut.
fn bounded(text: &str, limit: usize) -> Cow<'_, str> {
    if text.len() <= limit {
        return Cow::Borrowed(text);
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}… ({} bytes)", &text[..end], text.len()))
}

impl Handler {
    /// Reads one record of the command topic: the command it holds, or what was done with it
    /// (another environment's is skipped, a bad one rejected).
    pub fn read(&self, message: &OwnedMessage) -> Read {
        // Another environment's command is not ours, whatever it holds: skipped before it is
        // read, so that nothing of it (a type or a header this build does not know) is
        // dead-lettered here (contract-head §6).
        let theirs = environment_header(message.headers());
        if let (Some(ours), Some(theirs)) = (&self.environment, theirs) {
            if ours.as_bytes() != theirs {
                let kind = decode(message.payload(), message.headers()).ok();
                let theirs = String::from_utf8_lossy(theirs);
                let theirs = bounded(&theirs, REASON_BYTES);
                let kind = kind.map(|(kind, _)| kind);
                self.observer().other_environment(message, kind, &theirs);
                return Read::Done(Vec::new());
            }
        }
        let (kind, mut command) = match decode(message.payload(), message.headers()) {
            Ok(decoded) => decoded,
            Err(rejection) => return Read::Done(self.reject(message, &rejection)),
        };
        // Without a header of its own, a command is of this instance's environment.
        let environment = &mut command.correlation.environment;
        if let (Some(ours), None) = (&self.environment, &*environment) {
            *environment = Some(ours.clone());
        }
        Read::Command(kind, command)
    }

    /// Handles a command read from `message`. Most commands are applied at once; an equip
    /// SPAWN first waits for the equipment service, a SPAWN_FROM_CHARACTER for the data service,
    /// and a meso drop's reservation for the party service (with the later commands on that
    /// drop queued behind it), beside the partition's other commands, not in front of them.
    /// Either way the answer is the deliveries of the events the command caused: its offset may
    /// be committed once they are all acknowledged.
    pub async fn handle(
        self: &Arc<Self>,
        message: &OwnedMessage,
        kind: CommandType,
        mut command: Command,
        position: LogPosition,
    ) -> Handled {
        if let Action::OnDrop(request) = &mut command.action {
            if let (DropRequest::Reserve(request), Some(_)) = (&mut *request, &self.parties) {
                // Not asked yet: a meso drop's reservation is then decided once it is.
                request.present = None;
            }
            let drop = (command.tenant.clone(), request.drop_id());
            if !self.drop_order.is_waiting(&drop) {
                match self.apply(kind, command, position.clone()).await {
                    Applied::Done(deliveries) => return Handled::Now(deliveries),
                    Applied::NeedsParty(undecided) => command = undecided,
                }
            }
            let place = self.drop_order.queue(drop);
            let handler = self.clone();
            return Handled::beside(async move {
                handler
                    .apply_in_turn(kind, command, position.late(), place)
                    .await
            });
        }
        let asks = self.asks(kind, &command);
        // A redelivered command is recognised first, so that it asks nobody again (the
        // equipment service would create a second equipment that nobody would use): the store
        // answers it already applied.
        if asks.is_empty() || self.was_applied(&position).await {
            return Handled::Now(self.apply(kind, command, position).await.deliveries());
        }
        let (handler, message) = (self.clone(), message.clone());
        Handled::beside(async move {
            let mut command = command;
            for ask in asks {
                command = match handler.ask(kind, ask, command).await {
                    Ok(answered) => answered,
                    Err(rejection) => return handler.reject(&message, &rejection),
                };
            }
            handler
                .apply(kind, command, position.late())
                .await
                .deliveries()
        })
    }

    /// The peers `command` waits for before it is applied, in order: none for most commands.
    /// Each is asked when its own condition holds, so they compose (today no command meets two:
    /// only a SPAWN creates equipment, only a SPAWN_FROM_CHARACTER lands).
    fn asks(&self, kind: CommandType, command: &Command) -> Vec<Ask> {
        let Action::Spawn(spec) = &command.action else {
            return Vec::new();
        };
        let contents = spec.contents;
        let mut asks = Vec::new();
        if let (CommandType::SpawnFromCharacter, Some(floor)) = (kind, &self.floor) {
            asks.push(Ask::Floor(floor.clone()));
        }
        // An equip whose stats come inline (the newer generation) needs no equipment created.
        let bare_equip =
            contents.is_equip() && contents.equipment_id() == 0 && contents.stats().is_zero();
        if let (CommandType::Spawn, Some(equipment), true) = (kind, &self.equipment, bare_equip) {
            asks.push(Ask::Equipment(equipment.clone(), contents.item_id()));
        }
        asks
    }

    /// Asks a peer, beside the partition: the command as its answer changes it, or why it
    /// cannot be applied.
    async fn ask(
        &self,
        kind: CommandType,
        ask: Ask,
        mut command: Command,
    ) -> Result<Command, Rejection> {
        let Command {
            tenant,
            location,
            correlation,
            action,
        } = &mut command;
        match (ask, action) {
            (Ask::Equipment(equipment, item_id), Action::Spawn(spec)) => {
                match equipment.create(tenant, item_id).await {
                    Ok(equipment_id) => spec.contents = spec.contents.with_equipment(equipment_id),
                    Err(error) => {
                        return Err(Rejection {
                            command_type: Some(kind),
                            class: RejectionClass::Equipment,
                            reason: error.to_string(),
                        })
                    }
                }
            }
            (Ask::Floor(floor), Action::Spawn(spec)) => {
                let at = spec.position;
                let (outcome, y) = match floor.foothold_below(tenant, location.map_id, at).await {
                    Ok(foothold) => match foothold.and_then(|foothold| foothold.y_at(at.x)) {
                        Some(y) => (Landing::Landed, y),
                        None => (Landing::NoFloor, at.y),
                    },
                    Err(error) => {
                        tracing::warn!(
                            %error,
                            tenant = %tenant.id,
                            transaction_id = %correlation.transaction_id,
                            "the data service named no floor: the drop stays where it was dropped"
                        );
                        (Landing::Failed, at.y)
                    }
                };
                self.metrics.landing(outcome);
                spec.position.y = y;
            }
            // Each ask is made of the commands `asks` names it for, and of no other.
            (Ask::Equipment(..) | Ask::Floor(_), Action::OnDrop(_)) => {}
        }
        Ok(command)
    }

    /// Applies a command on a drop once those queued before it on the drop are applied; a
    /// meso drop's reservation that the store could not decide first learns from the party
    /// service who is present to share it, then is applied again.
    async fn apply_in_turn(
        self: Arc<Self>,
        kind: CommandType,
        mut command: Command,
        position: LogPosition,
        mut place: Place<DropKey>,
    ) -> Vec<Delivery> {
        place.turn().await;
        let deliveries = loop {
            match self.apply(kind, command, position.clone()).await {
                Applied::Done(deliveries) => break deliveries,
                Applied::NeedsParty(mut undecided) => {
                    let (tenant, location) = (&undecided.tenant, undecided.location);
                    let Action::OnDrop(DropRequest::Reserve(request)) = &mut undecided.action
                    else {
                        unreachable!("only a reservation waits for the party service");
                    };
                    let character_id = request.character_id;
                    let present = self.party_present(tenant, character_id, location).await;
                    // Asked now: the next application decides (`present` is never `None` again).
                    request.present = Some(present);
                    command = undecided;
                }
            }
        };
        self.drop_order.finish(place);
        deliveries
    }

    /// The members of the character's party online at `location`; none (the picker alone)
    /// when the party service cannot say in time.
    async fn party_present(
        &self,
        tenant: &TenantRef,
        character_id: u32,
        location: Location,
    ) -> Vec<u32> {
        let Some(parties) = &self.parties else {
            return Vec::new();
        };
        match parties.present(tenant, character_id, &location).await {
            Ok(lookup) => {
                self.metrics.party_lookup(lookup.outcome());
                lookup.into_present()
            }
            Err(error) => {
                tracing::warn!(%error, character_id, "party lookup failed: the picker is awarded the meso alone");
                self.metrics.party_lookup(PartyLookup::Failed);
                Vec::new()
            }
        }
    }

    /// Applies a decoded command to the store and publishes its events.
    async fn apply(&self, kind: CommandType, command: Command, position: LogPosition) -> Applied {
        let Command {
            tenant,
            location,
            mut correlation,
            action,
        } = command;
        // A reservation the store may not decide yet is applied again as it came.
        let undecided =
            matches!(&action, Action::OnDrop(DropRequest::Reserve(r)) if r.present.is_none())
                .then(|| correlation.clone());
        let observer = self.observer();
        let mut observed = observer.begin(kind, &mut correlation);
        let origin = Origin {
            tenant,
            location,
            correlation,
            position: Some(position),
        };
        let mut sink = self.sink();
        let span = observed.span();
        let answer = self
            .commit(&origin, &action, clock::now(), &mut |event| {
                observed.saw(&event);
                sink.take(event);
            })
            .instrument(span)
            .await;
        if let (Err(Refusal::PartyNotAsked), Some(correlation)) = (answer.result, undecided) {
            // Nothing happened: the command is told of once, when it is decided.
            let Origin {
                tenant, location, ..
            } = origin;
            return Applied::NeedsParty(Command {
                tenant,
                location,
                correlation,
                action,
            });
        }
        observer.answered(observed, &origin, &answer);
        Applied::Done(sink.deliveries)
    }

    /// Logs, counts and dead-letters a command that cannot be applied.
    fn reject(&self, message: &OwnedMessage, rejection: &Rejection) -> Vec<Delivery> {
        let reason = rejection.to_string();
        let reason = bounded(&reason, REASON_BYTES);
        self.observer().rejected(message, rejection, &reason);
        self.dead_letter(message, rejection, &reason)
            .into_iter()
            .collect()
    }

    fn observer(&self) -> Observer<'_> {
        Observer {
            metrics: &self.metrics,
            spans: &self.spans,
        }
    }

    /// Copies a rejected record to the dead-letter topic, when there is one.
    fn dead_letter(
        &self,
        message: &OwnedMessage,
        rejection: &Rejection,
        reason: &str,
    ) -> Option<Delivery> {
        let mut headers = message.headers().cloned().unwrap_or_default();
        for (key, value) in [
            (DEAD_LETTER_REASON, reason.to_owned()),
            (DEAD_LETTER_CLASS, rejection.class.name().to_owned()),
            (DEAD_LETTER_TOPIC, message.topic().to_owned()),
            (DEAD_LETTER_PARTITION, message.partition().to_string()),
            (DEAD_LETTER_OFFSET, message.offset().to_string()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(&value),
            });
        }
        let letter = DeadLetter {
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
        };
        if letter.size() > self.max_record_bytes {
            tracing::error!(
                partition = message.partition(),
                offset = message.offset(),
                bytes = letter.size(),
                limit = self.max_record_bytes,
                "the dead letter would be larger than the broker takes: not sent, passed"
            );
            self.metrics.undeliverable();
            return None;
        }
        self.publisher.dead_letter(letter)
    }
}

/// The handler's calls into the store, all of them: the one place to change with its seam.
impl Handler {
    /// Asks the store to make the change `action` asks for; its events go to `out`.
    async fn commit(
        &self,
        origin: &Origin,
        action: &Action,
        now: Millis,
        out: EventOut<'_>,
    ) -> Answer {
        let store = &self.store;
        let answer = |drop_id, result| Answer { drop_id, result };
        match action {
            Action::Spawn(spec) => match store.spawn(origin, *spec, now, out).await {
                Ok(drop) => answer(drop.id.get(), Ok(())),
                Err(refusal) => answer(0, Err(refusal)),
            },
            Action::OnDrop(request) => answer(
                request.drop_id(),
                store.on_drop(origin, request, now, out).await,
            ),
        }
    }

    /// Where the events of a change go: to the broker, or only noted when the store's outbox
    /// holds them.
    fn sink(&self) -> EventSink<'_> {
        self.events.sink()
    }

    /// Whether the store recorded the command at `position` as applied.
    async fn was_applied(&self, position: &LogPosition) -> bool {
        self.store.was_applied(position).await
    }
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn reasons_are_bounded_at_a_character_boundary() {
        assert_eq!(bounded("short", 8), "short");
        let long = "é".repeat(300);
        let cut = bounded(&long, 255);
        assert!(cut.len() < 300, "{}", cut.len());
        assert!(cut.starts_with(&"é".repeat(127)));
        assert!(cut.ends_with("(600 bytes)"));
    }
}
