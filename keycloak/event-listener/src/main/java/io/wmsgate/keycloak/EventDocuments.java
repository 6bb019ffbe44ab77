package io.wmsgate.keycloak;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.LinkedHashMap;
import java.util.Map;
import org.keycloak.events.Event;
import org.keycloak.events.admin.AdminEvent;
import org.keycloak.events.admin.AuthDetails;
import org.keycloak.util.JsonSerialization;

/**
 * The JSON documents the alerting service receives.
 *
 * <p>User events: {@code {"kind": "user", "id", "time" (epoch ms, UTC), "type", "realm_id",
 * "client_id", "user_id", "session_id", "ip_address", "user_agent", "error", "details"}}. Admin events:
 * {@code {"kind": "admin", "id", "time", "realm_id", "operation", "resource_type",
 * "resource_path", "error", "details", "auth": {"realm_id", "client_id", "user_id",
 * "ip_address"}, "representation"}} ({@code representation} only when the realm includes it).
 */
public final class EventDocuments {

    private EventDocuments() {
    }

    /**
     * @param event a user event (login, failed login, logout, code to token, OTP change...)
     * @param userAgent the User-Agent of the request that caused it (null when unknown); Keycloak
     *     does not keep it with the event, and the alerting service tells devices apart by it
     * @return its JSON document
     */
    public static String user(Event event, String userAgent) {
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("kind", "user");
        doc.put("id", event.getId());
        doc.put("time", event.getTime());
        doc.put("type", event.getType() == null ? null : event.getType().name());
        doc.put("realm_id", event.getRealmId());
        doc.put("client_id", event.getClientId());
        doc.put("user_id", event.getUserId());
        doc.put("session_id", event.getSessionId());
        doc.put("ip_address", event.getIpAddress());
        doc.put("user_agent", userAgent);
        doc.put("error", event.getError());
        doc.put("details", event.getDetails() == null ? Map.of() : event.getDetails());
        return write(doc);
    }

    /**
     * @param event an admin event (role, group, attribute, user changes...)
     * @param includeRepresentation whether the realm sends the changed representation
     * @return its JSON document
     */
    public static String admin(AdminEvent event, boolean includeRepresentation) {
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("kind", "admin");
        doc.put("id", event.getId());
        doc.put("time", event.getTime());
        doc.put("realm_id", event.getRealmId());
        doc.put("operation", event.getOperationType() == null ? null : event.getOperationType().name());
        doc.put("resource_type", event.getResourceTypeAsString());
        doc.put("resource_path", event.getResourcePath());
        doc.put("error", event.getError());
        doc.put("details", event.getDetails() == null ? Map.of() : event.getDetails());
        AuthDetails auth = event.getAuthDetails();
        Map<String, Object> who = new LinkedHashMap<>();
        if (auth != null) {
            who.put("realm_id", auth.getRealmId());
            who.put("client_id", auth.getClientId());
            who.put("user_id", auth.getUserId());
            who.put("ip_address", auth.getIpAddress());
        }
        doc.put("auth", who);
        if (includeRepresentation && event.getRepresentation() != null) {
            doc.put("representation", event.getRepresentation());
        }
        return write(doc);
    }

    private static String write(Map<String, Object> doc) {
        try {
            return JsonSerialization.writeValueAsString(doc);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
