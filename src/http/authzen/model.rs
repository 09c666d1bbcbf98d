//! The AuthZEN information model as requests carry it, and how it maps onto the RBAC names.
//!
//! Every field is optional to serde, so that a missing one is reported here by its path
//! (`subject.type`) rather than in serde's words, and unknown fields are ignored, as the
//! specification requires. A field of the wrong type is still serde's error: a 400 either way.
//!
//! The mapping: the RBAC user is `subject.id` for subjects of type `user`, else
//! `"<subject.type>/<subject.id>"`; the resource is `"<resource.type>/<resource.id>"`; the
//! action is `action.name`. Each must then be a valid name of its kind.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::app::Question;
use crate::http::error::ApiError;
use crate::policy::{Action, Resource, UserName};

/// The subject type whose ids are RBAC users as they are.
pub const USER_TYPE: &str = "user";

/// An object accepted and not read: `properties` and `context`. Anything but an object (or
/// null) in their place is a 400, as for any field of the wrong type.
#[derive(Debug, Default)]
pub struct Ignored;

impl<'de> Deserialize<'de> for Ignored {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnyObject;
        impl<'de> Visitor<'de> for AnyObject {
            type Value = Ignored;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ignored, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Ignored)
            }
        }
        deserializer.deserialize_map(AnyObject)
    }
}

/// A member that must be a JSON object (or null, or absent) read as `T`. serde reads a struct
/// from an array as well, its elements as the fields in order: `["user", "alice"]` must not
/// pass for a subject.
fn object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectOf<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOf<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_unit<E>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map)).map(Some)
        }
    }
    deserializer.deserialize_any(ObjectOf(std::marker::PhantomData))
}

/// A subject or a resource: a type and an id.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(expecting = "an object with `type` and `id`")]
pub struct Entity {
    /// Required.
    #[serde(rename = "type", default)]
    #[schema(required = true)]
    kind: Option<String>,
    /// Required, except for the entity a search looks for (ignored there).
    #[serde(default)]
    id: Option<String>,
    /// Accepted and ignored.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    #[allow(dead_code)]
    properties: Option<Ignored>,
}

/// What is asked to be done.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(expecting = "an object with `name`")]
pub struct ActionEntity {
    /// Required.
    #[serde(default)]
    #[schema(required = true)]
    name: Option<String>,
    /// Accepted and ignored.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    #[allow(dead_code)]
    properties: Option<Ignored>,
}

/// The body of an evaluation, and of each item of a batch of evaluations.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(expecting = "an evaluation: an object with `subject`, `action` and `resource`")]
pub struct EvaluationRequest {
    #[serde(default, deserialize_with = "object")]
    #[schema(required = true)]
    pub subject: Option<Entity>,
    #[serde(default, deserialize_with = "object")]
    #[schema(required = true)]
    pub action: Option<ActionEntity>,
    #[serde(default, deserialize_with = "object")]
    #[schema(required = true)]
    pub resource: Option<Entity>,
    /// Accepted and ignored.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    #[allow(dead_code)]
    pub context: Option<Ignored>,
}

/// The body of a batch of evaluations: defaults, the evaluations, and how to run them.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EvaluationsRequest<'a> {
    /// The default of each evaluation that has none.
    #[serde(default, deserialize_with = "object")]
    pub subject: Option<Entity>,
    /// The default of each evaluation that has none.
    #[serde(default, deserialize_with = "object")]
    pub action: Option<ActionEntity>,
    /// The default of each evaluation that has none.
    #[serde(default, deserialize_with = "object")]
    pub resource: Option<Entity>,
    /// Accepted and ignored.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    #[allow(dead_code)]
    pub context: Option<Ignored>,
    /// 1 to 1,000 evaluations. Absent or empty: the body is one evaluation.
    #[serde(default, borrow)]
    #[schema(value_type = Option<Vec<EvaluationRequest>>)]
    pub evaluations: Option<Vec<&'a RawValue>>,
    #[serde(default, deserialize_with = "object")]
    pub options: Option<Options>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct Options {
    #[serde(default)]
    pub evaluations_semantic: Option<Semantic>,
}

/// How a batch of evaluations runs: all of them (the default), or up to the first deny, or up
/// to the first permit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Semantic {
    #[default]
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

/// The body of a subject or resource search: the entities, one of which is the type searched
/// for (its `id` is ignored), and the page.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SearchRequest {
    #[serde(default, deserialize_with = "object")]
    #[schema(required = true)]
    pub subject: Option<Entity>,
    #[serde(default, deserialize_with = "object")]
    #[schema(required = true)]
    pub action: Option<ActionEntity>,
    #[serde(default, deserialize_with = "object")]
    #[schema(required = true)]
    pub resource: Option<Entity>,
    /// Accepted and ignored.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    #[allow(dead_code)]
    pub context: Option<Ignored>,
    #[serde(default, deserialize_with = "object")]
    pub page: Option<PageRequest>,
}

/// The body of an action search: the subject, the resource, and the page. (An `action`, like
/// any other unknown field, is ignored.)
#[derive(Debug, Deserialize, ToSchema)]
pub struct ActionSearchRequest {
    #[serde(default, deserialize_with = "object")]
    #[schema(required = true)]
    pub subject: Option<Entity>,
    #[serde(default, deserialize_with = "object")]
    #[schema(required = true)]
    pub resource: Option<Entity>,
    /// Accepted and ignored.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    #[allow(dead_code)]
    pub context: Option<Ignored>,
    #[serde(default, deserialize_with = "object")]
    pub page: Option<PageRequest>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PageRequest {
    /// A previous page's `next_token`, to resume after it; the rest of the request unchanged.
    #[serde(default)]
    pub token: Option<String>,
    /// Results per page: 100 if absent; more than 1,000 is taken as 1,000.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Accepted and ignored.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    #[allow(dead_code)]
    pub properties: Option<Ignored>,
}

/// An evaluation's names, mapped onto RBAC and valid.
pub struct Asked<'a> {
    pub user: Cow<'a, str>,
    pub resource: String,
    pub action: &'a str,
}

impl Asked<'_> {
    pub fn question(&self) -> Question<'_> {
        Question {
            user: &self.user,
            resource: &self.resource,
            action: self.action,
        }
    }
}

/// 400 for a required member that is missing.
fn missing(path: &str) -> ApiError {
    ApiError::InvalidRequest(format!("`{path}` is required"))
}

/// `entity`, or 400 naming it if it is missing.
pub fn required<'e, T>(entity: Option<&'e T>, path: &str) -> Result<&'e T, ApiError> {
    entity.ok_or_else(|| missing(path))
}

/// A member that must be present and not empty.
fn text<'e>(value: &'e Option<String>, path: &str) -> Result<&'e str, ApiError> {
    match value.as_deref() {
        None => Err(missing(path)),
        Some("") => Err(ApiError::InvalidRequest(format!(
            "`{path}` must not be empty"
        ))),
        Some(value) => Ok(value),
    }
}

impl Entity {
    /// The entity's type; `path` is where the entity is (`subject`), for the message.
    pub fn kind(&self, path: &str) -> Result<&str, ApiError> {
        text(&self.kind, &format!("{path}.type"))
    }

    fn id(&self, path: &str) -> Result<&str, ApiError> {
        text(&self.id, &format!("{path}.id"))
    }

    /// The RBAC user this subject is.
    pub fn user(&self) -> Result<Cow<'_, str>, ApiError> {
        let (kind, id) = (self.kind("subject")?, self.id("subject")?);
        let user = if kind == USER_TYPE {
            Cow::Borrowed(id)
        } else {
            Cow::Owned(format!("{kind}/{id}"))
        };
        UserName::validate("subject", &user)?;
        Ok(user)
    }

    /// The RBAC resource this resource is.
    pub fn resource(&self) -> Result<String, ApiError> {
        let resource = format!("{}/{}", self.kind("resource")?, self.id("resource")?);
        Resource::validate("resource", &resource)?;
        Ok(resource)
    }
}

impl ActionEntity {
    /// The RBAC action.
    pub fn name(&self) -> Result<&str, ApiError> {
        let name = text(&self.name, "action.name")?;
        Ok(Action::validate("action.name", name)?)
    }
}

/// The names of an evaluation whose entities are these (each its own or the default).
pub fn asked<'a>(
    subject: Option<&'a Entity>,
    action: Option<&'a ActionEntity>,
    resource: Option<&'a Entity>,
) -> Result<Asked<'a>, ApiError> {
    let (subject, action, resource) = (
        required(subject, "subject")?,
        required(action, "action")?,
        required(resource, "resource")?,
    );
    Ok(Asked {
        user: subject.user()?,
        resource: resource.resource()?,
        action: action.name()?,
    })
}

/// A request body read as `T`: 400 for anything that is not.
pub fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::InvalidRequest(format!("invalid JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(json: &str) -> Entity {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn users_are_ids_for_the_user_type_and_type_slash_id_otherwise() {
        let alice = entity(r#"{"type":"user","id":"alice@example.com"}"#);
        assert_eq!(alice.user().unwrap(), "alice@example.com");
        let ci = entity(r#"{"type":"service","id":"ci","properties":{"a":[1]}}"#);
        assert_eq!(ci.user().unwrap(), "service/ci");
        let record = entity(r#"{"type":"record","id":"record-1","extra":true}"#);
        assert_eq!(record.resource().unwrap(), "record/record-1");
    }

    #[test]
    fn missing_empty_or_invalid_members_are_named_in_the_error() {
        let cases = [
            (r#"{"id":"alice"}"#, "`subject.type` is required"),
            (r#"{"type":"user"}"#, "`subject.id` is required"),
            (
                r#"{"type":"user","id":""}"#,
                "`subject.id` must not be empty",
            ),
            (
                r#"{"type":"user","id":"al*ce"}"#,
                "`subject` must not contain `*`",
            ),
        ];
        for (json, expected) in cases {
            let Err(ApiError::InvalidRequest(message)) = entity(json).user() else {
                panic!("{json} was accepted");
            };
            assert!(message.starts_with(expected), "{json}: {message}");
        }
        let long = format!(r#"{{"type":"record","id":"{}"}}"#, "x".repeat(300));
        assert!(entity(&long).resource().is_err());
    }

    #[test]
    fn entities_options_and_pages_must_be_objects_not_arrays() {
        for body in [
            r#"{"subject":["user","alice"]}"#,
            r#"{"action":["read"]}"#,
            r#"{"resource":["record","record-1"]}"#,
        ] {
            assert!(
                serde_json::from_str::<EvaluationRequest>(body).is_err(),
                "{body}"
            );
        }
        assert!(
            serde_json::from_str::<EvaluationsRequest>(r#"{"options":["execute_all"]}"#).is_err()
        );
        assert!(serde_json::from_str::<SearchRequest>(r#"{"page":[]}"#).is_err());
        let null =
            serde_json::from_str::<SearchRequest>(r#"{"subject":null,"page":null}"#).unwrap();
        assert!(null.subject.is_none() && null.page.is_none());
    }

    #[test]
    fn properties_and_context_must_be_objects_when_present() {
        assert!(serde_json::from_str::<Entity>(r#"{"properties":null}"#).is_ok());
        assert!(serde_json::from_str::<Entity>(r#"{"properties":{"x":{"y":[]}}}"#).is_ok());
        assert!(serde_json::from_str::<Entity>(r#"{"properties":"x"}"#).is_err());
        assert!(serde_json::from_str::<EvaluationRequest>(r#"{"context":[1]}"#).is_err());
    }
}
