//! The string enums stored in Waflow's tables. They are stored as their SCREAMING_CASE names
//! (not native database enums) so one schema serves SQLite and PostgreSQL and a new value needs
//! no migration.

use sea_orm::entity::prelude::*;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        #[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::None)", rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant),+ }
    };
}

string_enum!(
    /// Who delivers a sender's messages.
    SenderProvider { Sandbox, CloudApi }
);
string_enum!(
    /// Whether a sender can send right now.
    SenderStatus { Online, Offline }
);
string_enum!(
    /// Meta's quality rating of a phone number, from recent user feedback.
    QualityRating { Green, Yellow, Red, Unknown }
);
string_enum!(
    /// Meta's template categories; they decide pricing and review rules.
    TemplateCategory { Marketing, Utility, Authentication }
);
string_enum!(
    /// A template's review state; only APPROVED templates can be sent.
    TemplateStatus { Pending, Approved, Rejected, Paused, Disabled }
);
string_enum!(
    /// A WhatsApp conversation (sender and contact) or an API one (assistant and identifier).
    ConversationType { Whatsapp, Api }
);
string_enum!(ConversationStatus { Active, Ended });
string_enum!(EndReason { Inactivity, Manual });
string_enum!(MessageDirection { Inbound, Outbound });
string_enum!(
    /// Who wrote a message: the customer, the AI assistant, a human agent or the system (flows).
    MessageRole { Customer, Assistant, Agent, System }
);
string_enum!(
    /// What a message is, after Meta's message `type`s: Cloud API webhooks reference,
    /// "messages" (<https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages>).
    /// INTERACTIVE covers reply buttons, list rows, WhatsApp Flows answers and template quick
    /// replies; SYSTEM is WhatsApp's notice (a number change), not the customer talking; EDIT
    /// and REVOKE change an earlier message; WELCOME is a customer opening the chat for the
    /// first time; UNSUPPORTED is a message WhatsApp does not pass on; OTHER only on old rows.
    MessageKind {
        Text,
        Template,
        Image,
        Audio,
        Video,
        Document,
        Sticker,
        Location,
        Contacts,
        Interactive,
        Order,
        Reaction,
        Edit,
        Revoke,
        Welcome,
        System,
        Unsupported,
        Other
    }
);
string_enum!(MessageStatus {
    Received,
    Queued,
    Sent,
    Delivered,
    Read,
    Failed
});
string_enum!(
    /// Which model answers for an assistant.
    AssistantProvider { OpenaiCompatible, Scripted }
);
string_enum!(
    /// The post-conversation evaluation: running, done, failed, or not done in time.
    ExtractionStatus {
        Pending,
        Completed,
        Failed,
        TimedOut
    }
);
string_enum!(RunStatus {
    Queued,
    Running,
    Waiting,
    Succeeded,
    Failed,
    Cancelled
});
string_enum!(StepStatus {
    Running,
    Succeeded,
    Failed,
    Skipped
});
string_enum!(
    /// A campaign's life: DRAFT until started, SCHEDULED while it waits for its start or send
    /// window, RUNNING while it sends, then COMPLETED or CANCELLED; PAUSED by a user or a rule.
    CampaignStatus {
        Draft,
        Scheduled,
        Running,
        Paused,
        Completed,
        Cancelled
    }
);
string_enum!(
    /// Where one recipient of a campaign is: waiting, along the delivery funnel, or left out.
    RecipientStatus {
        Pending,
        Sent,
        Delivered,
        Read,
        Replied,
        Failed,
        SkippedOptedOut,
        SkippedInvalid,
        SkippedCancelled
    }
);
string_enum!(DeliveryStatus {
    Pending,
    Succeeded,
    Failed
});

/// Enums stored inside JSON columns (template components, assistant settings), not as columns.
macro_rules! json_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        #[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
        pub enum $name { $($variant),+ }
    };
}

json_enum!(
    /// A template header's kind: text (may hold one placeholder), media, or a location.
    HeaderFormat { Text, Image, Video, Document, Location }
);
json_enum!(
    /// A template button's kind, as Meta names it. `COPY_CODE` copies a coupon code given in
    /// each send; `OTP` is an AUTHENTICATION template's one-time-password button. `FLOW`,
    /// `CATALOG`, `MPM` and `VOICE_CALL` buttons come from Meta (`syncTemplates`) and take no
    /// parameter Waflow sends; they are kept because a button's index counts every button.
    ButtonType { QuickReply, Url, PhoneNumber, CopyCode, Otp, Flow, Catalog, Mpm, VoiceCall }
);
json_enum!(
    /// The type of a variable the post-conversation evaluation extracts.
    ExtractionType { String, Number, Boolean, Enum }
);
json_enum!(
    /// How a template's placeholders are written: `{{1}}`..`{{n}}` or `{{customer_name}}`.
    ParameterFormat { Positional, Named }
);
json_enum!(
    /// What an outgoing webhook endpoint subscribes to.
    WebhookEvent { MessageReceived, ConversationStarted, ConversationEnded, MessageStatusUpdated, SenderQualityChanged, FlowRunFailed, FlowPaused, CampaignPaused, ContactIdentityChanged }
);
