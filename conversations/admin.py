from django.contrib import admin

from conversations.models import Conversation, ConversationShare, Message, Preset


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ["position", "role", "status", "text", "stop_reason", "error_code"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "team", "model", "updated_at"]
    list_filter = ["model", "team"]
    search_fields = ["title", "owner__username"]
    list_select_related = ["owner", "team"]
    raw_id_fields = ["owner", "copied_from"]
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "conversation", "role", "status", "model", "created_at"]
    list_filter = ["status", "role"]
    raw_id_fields = ["conversation"]
    list_select_related = ["conversation"]


@admin.register(ConversationShare)
class ConversationShareAdmin(admin.ModelAdmin):
    """Deleting a share here closes the sockets it let in (conversations.signals)."""

    list_display = ["conversation", "kind", "user", "created_by", "created_at"]
    list_filter = ["kind"]
    raw_id_fields = ["conversation", "user", "created_by"]
    list_select_related = ["conversation", "user", "created_by"]

    def has_add_permission(self, request):
        return False  # through the owner's share page, which keeps shares inside the team

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "model", "thinking_effort", "updated_at"]
    list_filter = ["team", "model"]
    search_fields = ["name"]
    raw_id_fields = ["created_by"]
