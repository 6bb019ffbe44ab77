package io.wmsgate.keycloak;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.Map;
import org.junit.jupiter.api.Test;
import org.keycloak.events.Event;
import org.keycloak.events.EventType;
import org.keycloak.events.admin.AdminEvent;
import org.keycloak.events.admin.AuthDetails;
import org.keycloak.events.admin.OperationType;
import org.keycloak.events.admin.ResourceType;
import org.keycloak.util.JsonSerialization;

class EventDocumentsTest {

    @Test
    @SuppressWarnings("unchecked")
    void aFailedLoginCarriesWhoWhenAndFromWhere() throws Exception {
        Event event = new Event();
        event.setId("e1");
        event.setTime(1_700_000_000_000L);
        event.setType(EventType.LOGIN_ERROR);
        event.setRealmId("r1");
        event.setClientId("wms-gateway");
        event.setUserId("u1");
        event.setIpAddress("127.0.0.2");
        event.setError("invalid_user_credentials");
        event.setDetails(Map.of("username", "picker.hf"));
        Map<String, Object> doc = JsonSerialization.readValue(EventDocuments.user(event, "Mozilla/5.0 (X11)"), Map.class);
        assertEquals("user", doc.get("kind"));
        assertEquals("LOGIN_ERROR", doc.get("type"));
        assertEquals(1_700_000_000_000L, ((Number) doc.get("time")).longValue());
        assertEquals("127.0.0.2", doc.get("ip_address"));
        assertEquals("Mozilla/5.0 (X11)", doc.get("user_agent"));
        assertEquals("invalid_user_credentials", doc.get("error"));
        assertEquals("picker.hf", ((Map<String, Object>) doc.get("details")).get("username"));
    }

    @Test
    @SuppressWarnings("unchecked")
    void anAdminEventNamesTheAdminAndKeepsTheRepresentationOnlyWhenAsked() throws Exception {
        AdminEvent event = new AdminEvent();
        event.setId("a1");
        event.setTime(1_700_000_000_000L);
        event.setRealmId("r1");
        event.setOperationType(OperationType.CREATE);
        event.setResourceType(ResourceType.REALM_ROLE_MAPPING);
        event.setResourcePath("users/u1/role-mappings/realm");
        event.setRepresentation("[{\"name\":\"sysadmin\"}]");
        AuthDetails auth = new AuthDetails();
        auth.setUserId("admin-1");
        auth.setIpAddress("127.0.0.3");
        event.setAuthDetails(auth);
        Map<String, Object> with = JsonSerialization.readValue(EventDocuments.admin(event, true), Map.class);
        assertEquals("admin", with.get("kind"));
        assertEquals("CREATE", with.get("operation"));
        assertEquals("REALM_ROLE_MAPPING", with.get("resource_type"));
        assertEquals("admin-1", ((Map<String, Object>) with.get("auth")).get("user_id"));
        assertEquals("[{\"name\":\"sysadmin\"}]", with.get("representation"));
        Map<String, Object> without = JsonSerialization.readValue(EventDocuments.admin(event, false), Map.class);
        assertFalse(without.containsKey("representation"));
    }
}
